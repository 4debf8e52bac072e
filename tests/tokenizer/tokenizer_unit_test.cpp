// Offline unit tests of the tokenizer stages on small hand-written tokenizers.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tokenize_command.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/model_tokenizer.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace kiln::tokenizer {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, RepairsLikeTextDecoder) {
  EXPECT_EQ(SanitizeUtf8("a\x80" "b"), "a" + kFffd + "b");                      // stray continuation
  EXPECT_EQ(SanitizeUtf8("\xE2\x82" "A"), kFffd + "A");                         // truncated 3-byte: one U+FFFD
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), kFffd + kFffd);                          // overlong: each byte
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), kFffd + kFffd + kFffd);              // surrogate
  EXPECT_EQ(SanitizeUtf8("Hi\xF0\x9F\x98"), "Hi" + kFffd);                     // cut at the end
  EXPECT_EQ(SanitizeUtf8("ok \xE2\x82\xAC"), "ok \xE2\x82\xAC");                // valid stays
  EXPECT_TRUE(IsValidUtf8(""));
}

TEST(Utf8, AssemblerNeverSplitsACharacter) {
  const std::string text = "a\xE2\x82\xAC\xF0\x9F\x98\x80z";  // a € 😀 z
  Utf8Assembler assembler;
  std::string out;
  for (char c : text) {
    std::string piece = assembler.Push(std::string(1, c));
    EXPECT_TRUE(IsValidUtf8(piece));
    out += piece;
  }
  out += assembler.Flush();
  EXPECT_EQ(out, text);
  Utf8Assembler dangling;
  EXPECT_EQ(dangling.Push("x\xF0\x9F"), "x");
  EXPECT_EQ(dangling.Flush(), kFffd);
}

TEST(Normalizer, Nfc) {
  EXPECT_EQ(NormalizeNfc("e\xCC\x81"), "\xC3\xA9");                              // e + acute -> é
  EXPECT_EQ(NormalizeNfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(NormalizeNfc("\xE2\x84\xAB"), "\xC3\x85");                          // Angstrom sign -> Å
  EXPECT_EQ(NormalizeNfc("\xE1\xB8\x8B\xCC\xA3"), "\xE1\xB8\x8D\xCC\x87");      // reorder: ḋ + dot below -> ḍ + dot above
  EXPECT_EQ(NormalizeNfc("plain ascii"), "plain ascii");
}

// A SentencePiece-style BPE (Gemma-like): "▁" for spaces, byte fallback, added tokens.
constexpr char kSpmJson[] = R"({
  "version": "1.0",
  "added_tokens": [
    {"id": 0, "content": "<pad>", "special": true, "normalized": false},
    {"id": 1, "content": "<eos>", "special": true, "normalized": false},
    {"id": 2, "content": "<bos>", "special": true, "normalized": false},
    {"id": 3, "content": "<unk>", "special": true, "normalized": false},
    {"id": 20, "content": "<tool>", "special": false, "normalized": false},
    {"id": 21, "content": "[R]", "special": false, "normalized": false, "rstrip": true, "lstrip": true},
    {"id": 22, "content": "cat", "special": false, "normalized": false, "single_word": true}
  ],
  "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
  "decoder": {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
    "vocab": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3,
      "<0xE2>": 4, "<0x82>": 5, "<0xAC>": 6, "<0x0A>": 7,
      "h": 8, "e": 9, "l": 10, "o": 11, "\u2581": 12, "he": 13, "ll": 14, "hell": 15, "hello": 16,
      "\u2581hello": 17, "w": 18, "c": 23, "a": 24, "t": 25},
    "merges": [["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["\u2581", "hello"], ["x", "y"]]}
})";

Tokenizer Spm() {
  Result<Tokenizer> tok = LoadTokenizerJson(kSpmJson);
  EXPECT_TRUE(tok.has_value()) << tok.error().ToString();
  return std::move(tok).value();
}

TEST(TokenizerJson, MergesByteFallbackAndSpecialTokens) {
  const Tokenizer tok = Spm();
  // "hello hello": merges up to "hello" and "▁hello".
  EXPECT_EQ(tok.Encode("hello hello"), (std::vector<TokenId>{16, 17}));
  EXPECT_EQ(tok.Encode("hello", {.add_special_tokens = true}), (std::vector<TokenId>{2, 16}));
  // "€" is not a token: its UTF-8 bytes E2 82 AC become byte tokens; "\n" too.
  EXPECT_EQ(tok.Encode("h\xE2\x82\xAC\n"), (std::vector<TokenId>{8, 4, 5, 6, 7}));
  EXPECT_EQ(tok.Decode({8, 4, 5, 6, 7}), "h\xE2\x82\xAC\n");
  // A byte run that is not UTF-8 decodes to one U+FFFD per byte (HF ByteFallback).
  EXPECT_EQ(tok.Decode({4, 5, 8}), kFffd + kFffd + "h");
  // Unknown character without a byte token: fused <unk>.
  EXPECT_EQ(tok.Encode("zz"), (std::vector<TokenId>{3}));
  // Added tokens are split out first; special ones only when parse_special.
  EXPECT_EQ(tok.Encode("he<eos>he"), (std::vector<TokenId>{13, 1, 13}));
  EXPECT_EQ(tok.Encode("<tool>", {.parse_special = false}), (std::vector<TokenId>{20}));
  EXPECT_NE(tok.Encode("<eos>", {.parse_special = false}), (std::vector<TokenId>{1}));
  EXPECT_EQ(tok.Decode({2, 16, 1}, /*skip_special_tokens=*/true), "hello");
  // lstrip/rstrip swallow the surrounding spaces; single_word only matches a whole word.
  EXPECT_EQ(tok.Encode("he [R] he"), (std::vector<TokenId>{13, 21, 13}));
  EXPECT_EQ(tok.Encode("cat"), (std::vector<TokenId>{22}));
  EXPECT_EQ(tok.Encode("cats"), (std::vector<TokenId>{23, 24, 25, 3}));
  // Empty and invalid input.
  EXPECT_TRUE(tok.Encode("").empty());
  EXPECT_EQ(tok.Encode("", {.add_special_tokens = true}), (std::vector<TokenId>{2}));
  EXPECT_FALSE(tok.Encode("\xFF\xFE h").empty());  // repaired to U+FFFD, no crash
}

TEST(TokenizerJson, StreamingDecodeMatchesWholeDecode) {
  const Tokenizer tok = Spm();
  const std::vector<TokenId> ids = {2, 17, 4, 5, 6, 7, 16, 4};  // ends inside a character
  StreamingDecoder stream(tok, /*skip_special_tokens=*/true);
  std::string streamed;
  std::vector<std::string> pieces;
  for (TokenId id : ids) {
    pieces.push_back(stream.Push(id));
    EXPECT_TRUE(IsValidUtf8(pieces.back()));
    streamed += pieces.back();
  }
  EXPECT_EQ(pieces[2], "");  // <0xE2> alone is not a character yet
  EXPECT_EQ(pieces[4], "\xE2\x82\xAC");
  streamed += stream.Flush();
  EXPECT_EQ(streamed, " hello\xE2\x82\xAC\nhello" + kFffd);
}

TEST(TokenizerJson, ErrorsNameTheProblem) {
  Result<Tokenizer> bad = LoadTokenizerJson("{\"model\": {\"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Digits\"}}");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(bad.error().message().find("Digits"), std::string::npos);
  for (const char* text : {"", "{", "not json", "{\"model\": {}}", "{\"model\": {\"vocab\": {\"a\": -1}}}",
                           "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 0}}}", "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}}",
                           "[1, 2]", "{\"model\": {\"vocab\": {\"a\": 0}}} trailing"}) {
    Result<Tokenizer> r = LoadTokenizerJson(text);
    EXPECT_FALSE(r.has_value()) << text;
  }
  // Duplicate keys: a second vocab scanned over the first crashed the loader (fuzz finding).
  Result<Tokenizer> twice = LoadTokenizerJson(
      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"d\":3},\"merges\":[]},\"added_tokens\":[]}");
  ASSERT_FALSE(twice.has_value());
  EXPECT_EQ(twice.error().code(), ErrorCode::kMalformed);
  EXPECT_NE(twice.error().message().find("duplicate key \"model.vocab\""), std::string::npos) << twice.error().message();
  Result<Tokenizer> top = LoadTokenizerJson("{\"model\": {\"vocab\": {\"a\": 0}}, \"decoder\": null, \"decoder\": null}");
  ASSERT_FALSE(top.has_value());
  EXPECT_NE(top.error().message().find("duplicate key \"decoder\""), std::string::npos) << top.error().message();
  Result<Tokenizer> unigram = LoadTokenizerJson("{\"model\": {\"type\": \"Unigram\", \"vocab\": {\"a\": 0}}}");
  ASSERT_FALSE(unigram.has_value());
  EXPECT_NE(unigram.error().message().find("Unigram"), std::string::npos);
}

// A GGUF vocabulary written byte by byte (version 3, tokenizer keys only).
std::string TinyGguf(bool truncate) {
  std::string out = "GGUF";
  auto u32 = [&](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [&](uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); };
  auto str = [&](const std::string& s) { u64(s.size()); out += s; };
  const std::vector<std::string> tokens = {"<pad>", "<eos>", "<bos>", "\xE2\x96\x81", "a", "b", "ab", "\xE2\x96\x81" "ab", "\n", "<turn|>"};
  const std::vector<int32_t> types = {3, 3, 3, 1, 1, 1, 1, 1, 1, 3};
  u32(3);
  u64(0);
  u64(6);
  str("tokenizer.ggml.model"); u32(8); str("gemma4");
  str("tokenizer.ggml.tokens"); u32(9); u32(8); u64(tokens.size());
  for (const auto& t : tokens) str(t);
  str("tokenizer.ggml.token_type"); u32(9); u32(5); u64(types.size());
  for (int32_t t : types) u32(static_cast<uint32_t>(t));
  str("tokenizer.ggml.merges"); u32(9); u32(8); u64(2);
  str("a b");
  str("\xE2\x96\x81 ab");
  str("tokenizer.ggml.bos_token_id"); u32(4); u32(2);
  str("tokenizer.ggml.eos_token_id"); u32(4); u32(1);
  if (truncate) out.resize(out.size() - 30);
  return out;
}

std::string WriteTemp(const std::string& name, const std::string& data) {
  const std::string dir = ::testing::TempDir() + "kiln_tok_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << data;
  return path;
}

TEST(GgufVocab, TinyGemma4Vocabulary) {
  Result<ModelTokenizer> m = LoadModelTokenizer(WriteTemp("tiny.gguf", TinyGguf(false)));
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(m->tokenizer.Encode("ab ab\n", {.add_special_tokens = true}), (std::vector<TokenId>{2, 6, 7, 8}));
  EXPECT_EQ(m->tokenizer.Decode({2, 6, 7, 8}, true), "ab ab\n");
  EXPECT_EQ(m->stop_token_ids, (std::vector<TokenId>{1, 9}));  // <eos>, then <turn|>
  Result<ModelTokenizer> truncated = LoadModelTokenizer(WriteTemp("truncated.gguf", TinyGguf(true)));
  ASSERT_FALSE(truncated.has_value());
  EXPECT_EQ(truncated.error().code(), ErrorCode::kMalformed) << truncated.error().ToString();
  EXPECT_FALSE(LoadModelTokenizer(WriteTemp("garbage.gguf", "GGUF\x03\0\0\0garbage")).has_value());
}

std::string TinyModelDir() {
  WriteTemp("tokenizer.json", kSpmJson);
  WriteTemp("tokenizer_config.json",
            R"({"bos_token": "<bos>", "eos_token": {"content": "<eos>"}, "add_bos_token": true,
                "chat_template": "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"})");
  WriteTemp("config.json", R"({"text_config": {"eos_token_id": [1, 20]}})");
  return std::filesystem::path(WriteTemp("generation_config.json", R"({"eos_token_id": [21, 1]})")).parent_path().string();
}

TEST(ModelTokenizer, StopTokensFromEveryConfig) {
  Result<ModelTokenizer> m = LoadModelTokenizer(TinyModelDir());
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  // generation_config first, then config (text_config), then tokenizer_config's eos_token.
  EXPECT_EQ(m->stop_token_ids, (std::vector<TokenId>{21, 1, 20}));
  EXPECT_TRUE(m->add_bos_token);
  ASSERT_TRUE(m->chat_template.has_value());
  ChatRequest request;
  request.messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hello"}])");
  EXPECT_EQ(*m->chat_template->Render(request), "<bos><user>hello");
}

TEST(TokenizeCommand, PrintsIdsAndPieces) {
  const std::string dir = TinyModelDir();
  auto run = [](int (*fn)(int, char**, const TokenizerLoader&), std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ::testing::internal::CaptureStdout();
    const int rc = fn(static_cast<int>(argv.size()), argv.data(), LoadModelTokenizer);
    return std::make_pair(rc, ::testing::internal::GetCapturedStdout());
  };
  EXPECT_EQ(run(RunTokenizeCommand, {"tokenize", dir, "hello hello", "--ids-only"}), std::make_pair(0, std::string("2 16 17\n")));
  EXPECT_EQ(run(RunTokenizeCommand, {"tokenize", dir, "hello"}), std::make_pair(0, std::string("2\t\"<bos>\"\n16\t\"hello\"\n")));
  // "<bos><user>hello": <bos>, fused unk for "<us", "e", unk for "r>", "hello".
  EXPECT_EQ(run(RunTokenizeCommand, {"tokenize", dir, "hello", "--chat", "--ids-only"}).second, "2 3 9 3 16\n");
  EXPECT_EQ(run(RunDetokenizeCommand, {"detokenize", dir, "2 16,17", "--skip-special"}), std::make_pair(0, std::string("hello hello\n")));
  EXPECT_EQ(run(RunTokenizeCommand, {"tokenize", dir}).first, 2);
  EXPECT_EQ(run(RunDetokenizeCommand, {"detokenize", dir, "abc"}).first, 2);
  EXPECT_EQ(run(RunDetokenizeCommand, {"detokenize", dir, "999"}).first, 1);
}

}  // namespace
}  // namespace kiln::tokenizer
