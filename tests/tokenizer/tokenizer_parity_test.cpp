// Exact parity with Hugging Face tokenizers (goldens from scripts/make_tokenizer_goldens.mjs)
// and with llama.cpp's Gemma 4 goldens. Skipped when the real tokenizer file is not cached.
#include <gtest/gtest.h>

#include <map>

#include "test_assets.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer_json.h"

namespace kiln::tokenizer {
namespace {

using testing::FindAsset;
using testing::FromHex;
using testing::LoadGolden;

// Loaded once per process: the big files take a moment.
const Tokenizer* CachedTokenizer(const std::string& relative) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(relative);
  if (it != cache.end()) return it->second.get();
  std::unique_ptr<Tokenizer> tok;
  if (auto path = FindAsset(relative)) {
    Result<Tokenizer> loaded = relative.ends_with(".gguf")
                                   ? [&]() -> Result<Tokenizer> {
                                       TRY_ASSIGN(GgufVocab v, ReadGgufVocab(*path));
                                       return TokenizerFromGguf(std::move(v));
                                     }()
                                   : LoadTokenizerJsonFile(*path);
    EXPECT_TRUE(loaded.has_value()) << loaded.error().ToString();
    if (loaded.has_value()) tok = std::make_unique<Tokenizer>(std::move(loaded).value());
  }
  return (cache[relative] = std::move(tok)).get();
}

std::string CaseText(const nlohmann::ordered_json& c) {
  return c.contains("hex") ? FromHex(c["hex"].get<std::string>()) : c["text"].get<std::string>();
}

struct HfCase {
  const char* golden;
  const char* asset;
  bool lossless;  // decode(encode(x)) == x for valid UTF-8 without special-token strings
};

class HfParityTest : public ::testing::TestWithParam<HfCase> {};

TEST_P(HfParityTest, EncodeDecodeMatchesHuggingFace) {
  const HfCase& param = GetParam();
  const Tokenizer* tok = CachedTokenizer(param.asset);
  if (tok == nullptr) GTEST_SKIP() << param.asset << " not in " << testing::AssetDir() << " (run scripts/fetch-tokenizer-assets.sh)";
  const auto golden = LoadGolden(param.golden);
  int checked = 0;
  for (const auto& c : golden["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const std::string text = CaseText(c);
    const auto ids = tok->Encode(text, {.add_special_tokens = false});
    EXPECT_EQ(ids, c["ids"].get<std::vector<TokenId>>());
    EXPECT_EQ(tok->Encode(text, {.add_special_tokens = true}), c["ids_with_special"].get<std::vector<TokenId>>());
    const auto golden_ids = c["ids"].get<std::vector<TokenId>>();
    EXPECT_EQ(tok->Decode(golden_ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(tok->Decode(golden_ids, true), c["decoded_skip_special"].get<std::string>());
    // Streaming gives the same text as a whole decode.
    StreamingDecoder stream(*tok);
    std::string streamed;
    for (TokenId id : golden_ids) {
      std::string piece = stream.Push(id);
      EXPECT_TRUE(IsValidUtf8(piece));
      streamed += piece;
    }
    streamed += stream.Flush();
    EXPECT_EQ(streamed, c["decoded"].get<std::string>());
    if (param.lossless && !c.contains("hex") && c["name"].get<std::string>().rfind("special_in_text", 0) != 0) {
      EXPECT_EQ(tok->Decode(ids, false), text) << "round trip";
    }
    ++checked;
  }
  for (const auto& d : golden["decode_cases"]) {
    SCOPED_TRACE("decode " + d["name"].get<std::string>());
    const auto ids = d["ids"].get<std::vector<TokenId>>();
    EXPECT_EQ(tok->Decode(ids, false), d["decoded"].get<std::string>());
    EXPECT_EQ(tok->Decode(ids, true), d["decoded_skip_special"].get<std::string>());
  }
  EXPECT_GE(checked, 50);
  // 300 random mixtures of scripts, emoji, whitespace runs, code and special-token strings.
  int random_checked = 0;
  for (const auto& c : golden["random_cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto expected = c["ids"].get<std::vector<TokenId>>();
    EXPECT_EQ(tok->Encode(text), expected) << "text: " << nlohmann::json(text).dump();
    const std::string decoded = c.contains("decoded") ? c["decoded"].get<std::string>() : text;
    EXPECT_EQ(tok->Decode(expected), decoded) << "text: " << nlohmann::json(text).dump();
    ++random_checked;
  }
  EXPECT_EQ(random_checked, 300);
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, HfParityTest,
                         ::testing::Values(HfCase{"gemma3.json", "gemma3/tokenizer.json", true},
                                           HfCase{"llama3.json", "llama3/tokenizer.json", true},
                                           HfCase{"qwen3.json", "qwen3/tokenizer.json", false},  // NFC
                                           HfCase{"mistral.json", "mistral/tokenizer.json", false}),
                         [](const auto& info) { return std::string(info.param.golden).substr(0, std::string(info.param.golden).find('.')); });

// llama.cpp's own goldens: tests separated by "\n__ggml_vocab_test__\n" in .inp, one line of
// ids per test in .out (tokenized with add_special = false, parse_special = false).
void CheckLlamaCppGoldens(const std::string& vocab_name, int expected_cases) {
  const std::string base = "llama.cpp/models/ggml-vocab-" + vocab_name + ".gguf";
  const Tokenizer* tok = CachedTokenizer(base);
  auto inp = FindAsset(base + ".inp");
  auto out = FindAsset(base + ".out");
  if (tok == nullptr || !inp || !out) GTEST_SKIP() << base << " not cached (run scripts/fetch-tokenizer-assets.sh)";
  Result<std::string> inputs = ReadFileToString(*inp);
  Result<std::string> outputs = ReadFileToString(*out);
  ASSERT_TRUE(inputs.has_value() && outputs.has_value());
  std::vector<std::string> texts;
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  while (pos < inputs->size()) {  // same splitting as llama.cpp's test-tokenizer-0
    const size_t hit = inputs->find(sep, pos);
    if (hit == std::string::npos) {
      texts.push_back(inputs->substr(pos));
      break;
    }
    texts.push_back(inputs->substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  std::vector<std::string> lines;
  std::istringstream lines_in(*outputs);
  for (std::string line; std::getline(lines_in, line);) lines.push_back(line);
  ASSERT_EQ(texts.size(), lines.size());
  EXPECT_EQ(static_cast<int>(texts.size()), expected_cases);
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<TokenId> expected;
    std::istringstream ids_in(lines[i]);
    for (TokenId id; ids_in >> id;) expected.push_back(id);
    EXPECT_EQ(tok->Encode(texts[i], {.add_special_tokens = false, .parse_special = false}), expected)
        << "case " << i << ": '" << texts[i] << "'";
    EXPECT_EQ(tok->Decode(expected), texts[i]) << "round trip of case " << i;
  }
}

TEST(LlamaCppGoldens, Gemma4) { CheckLlamaCppGoldens("gemma-4", 46); }
TEST(LlamaCppGoldens, Llama3Bpe) { CheckLlamaCppGoldens("llama-bpe", 46); }
TEST(LlamaCppGoldens, Qwen2) { CheckLlamaCppGoldens("qwen2", 46); }

// Gemma 4 (GGUF) gives the same ids as the Gemma 3 tokenizer.json for ordinary text.
TEST(Gemma4Gguf, MatchesGemma3HfGoldensOnOrdinaryText) {
  const Tokenizer* tok = CachedTokenizer("llama.cpp/models/ggml-vocab-gemma-4.gguf");
  if (tok == nullptr) GTEST_SKIP() << "ggml-vocab-gemma-4.gguf not cached";
  const auto golden = LoadGolden("gemma3.json");
  int compared = 0;
  for (const auto& c : golden["cases"]) {
    const std::string name = c["name"].get<std::string>();
    if (name.rfind("special", 0) == 0) continue;  // special tokens were renamed in Gemma 4
    SCOPED_TRACE(name);
    EXPECT_EQ(tok->Encode(CaseText(c), {.add_special_tokens = false}), c["ids"].get<std::vector<TokenId>>());
    ++compared;
  }
  EXPECT_GE(compared, 45);
}

TEST(Gemma4Gguf, SpecialTokensAndBos) {
  const Tokenizer* tok = CachedTokenizer("llama.cpp/models/ggml-vocab-gemma-4.gguf");
  if (tok == nullptr) GTEST_SKIP() << "ggml-vocab-gemma-4.gguf not cached";
  // docs/gemma4.md §8: <bos>=2, <|turn>=105, <turn|>=106, "\n"=107.
  EXPECT_EQ(tok->Encode("<|turn>user\nHi<turn|>\n", {.add_special_tokens = true}),
            (std::vector<TokenId>{2, 105, 2364, 107, 10979, 106, 107}));
  EXPECT_EQ(tok->PieceToId("<turn|>"), 106);
  EXPECT_TRUE(tok->IsSpecial(106));
  // Untrusted text: the control token string is encoded as plain text.
  const auto plain = tok->Encode("<turn|>", {.parse_special = false});
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok->Decode(plain), "<turn|>");
}

}  // namespace
}  // namespace kiln::tokenizer
