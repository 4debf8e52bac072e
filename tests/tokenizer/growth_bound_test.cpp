// Every tokenizer stage is bounded by the size of its input (growth_bound.h): a tokenizer.json
// whose normalizer or pre-tokenizer could blow a prompt up is refused at load, quickly and with
// the rule named; real tokenizers stay well inside the limits; and the computed bounds hold.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "test_assets.h"
#include "tokenize_command.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/growth_bound.h"
#include "tokenizer/model_tokenizer.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace kiln::tokenizer {
namespace {

// A minimal byte-fallback BPE with the given "normalizer" and "pre_tokenizer" JSON values.
std::string TokenizerJson(const std::string& normalizer, const std::string& pre_tokenizer = "null") {
  return R"({"normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre_tokenizer +
         R"(, "model": {"type": "BPE", "byte_fallback": true, "vocab": {"<0x20>": 0, "a": 1, "b": 2}, "merges": []}})";
}

std::string Replace(const std::string& pattern, const std::string& content) {
  return R"({"type": "Replace", "pattern": {"String": ")" + pattern + R"("}, "content": ")" + content + R"("})";
}

std::string Sequence(const std::vector<std::string>& steps) {
  std::string list;
  for (const std::string& s : steps) list += (list.empty() ? "" : ", ") + s;
  return R"({"type": "Sequence", "normalizers": [)" + list + "]}";
}

// 800 words of ordinary text: the input that became 80 M tokens before the bound.
std::string EightHundredWords() {
  std::string text;
  for (int i = 0; i < 800; ++i) text += (i % 7 == 0 ? "tokenizer " : "ab ");
  return text;
}

std::string ErrorOf(const std::string& json) {
  Result<Tokenizer> tok = LoadTokenizerJson(json);
  if (tok.has_value()) return "(loaded)";
  EXPECT_EQ(tok.error().code(), ErrorCode::kMalformed);
  return tok.error().message();
}

TEST(GrowthBound, ComposesAffineBounds) {
  // Prepend "▁" (1-fold + 3 bytes) then Replace " " -> "▁" (3-fold): 3 * (n + 3) = 3n + 9.
  const GrowthBound b = GrowthBound{1, 3}.Then({3, 0});
  EXPECT_EQ(b.factor, 3u);
  EXPECT_EQ(b.constant_bytes, 9u);
  EXPECT_EQ(b.MaxOutputBytes(/*input_bytes=*/10), 39u);  // 3 * 10 + 9
  // Saturates instead of wrapping: 64 steps of 16-fold.
  GrowthBound chain;
  for (int i = 0; i < 64; ++i) chain = chain.Then({16, 1});
  EXPECT_EQ(chain.factor, UINT64_MAX);
  EXPECT_EQ(chain.MaxOutputBytes(1), UINT64_MAX);
}

TEST(GrowthBound, HostileNormalizerIsRefusedAtLoadBeforeAnyText) {
  // " " -> 100 spaces: 800 words used to become 80 M tokens (7 GB). Now the file does not load.
  const auto start = std::chrono::steady_clock::now();
  const std::string message = ErrorOf(TokenizerJson(Replace(" ", std::string(100, ' '))));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(ms, 100.0);
  EXPECT_NE(message.find("normalizer can grow text 100-fold"), std::string::npos) << message;
  EXPECT_NE(message.find("step 1 of 1, Replace \" \" with a 100-byte string"), std::string::npos) << message;
  EXPECT_NE(message.find("1000 input bytes could become 100000"), std::string::npos) << message;
  EXPECT_NE(message.find("at most 16-fold plus 64 bytes"), std::string::npos) << message;
}

TEST(GrowthBound, ChainedStepsAreRefusedTogether) {
  // Three Replace " " -> 4 spaces: each 4-fold (allowed alone), 64-fold together.
  const std::string four = Replace(" ", "    ");
  const std::string message = ErrorOf(TokenizerJson(Sequence({four, R"({"type": "Lowercase"})", four, four})));
  EXPECT_NE(message.find("normalizer can grow text 64-fold"), std::string::npos) << message;
  EXPECT_NE(message.find("the 4 steps together: step 1 Replace \" \" with \"    \", then step 3"), std::string::npos)
      << message;
  EXPECT_EQ(message.find("Lowercase"), std::string::npos) << message;  // it does not grow text
  // Doubling five times (32-fold), and a doubling that feeds the next one ("a" -> "aa" -> "bbbb").
  EXPECT_NE(ErrorOf(TokenizerJson(Sequence(std::vector<std::string>(5, Replace(" ", "  "))))).find("32-fold"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(TokenizerJson(Sequence({Replace("a", "aa"), Replace("a", "bb")}))), "(loaded)");  // 4-fold
  // A long Prepend passes the factor but not the constant.
  const std::string prepend = R"({"type": "Prepend", "prepend": ")" + std::string(100, 'x') + R"("})";
  EXPECT_NE(ErrorOf(TokenizerJson(prepend)).find("plus 100 bytes"), std::string::npos);
}

TEST(GrowthBound, HostilePreTokenizerIsRefused) {
  const std::string metaspace = R"({"type": "Metaspace", "replacement": ")" + std::string(40, '_') + R"("})";
  const std::string message = ErrorOf(TokenizerJson("null", metaspace));
  EXPECT_NE(message.find("pre-tokenizer can grow text 80-fold plus 40 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("Metaspace with replacement a 40-byte string"), std::string::npos) << message;
  // Byte-level applied again and again: 2-fold each.
  const std::string byte_level = R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})";
  std::string steps;
  for (int i = 0; i < 5; ++i) steps += (i ? ", " : "") + byte_level;
  const std::string twice = ErrorOf(TokenizerJson("null", R"({"type": "Sequence", "pretokenizers": [)" + steps + "]}"));
  EXPECT_NE(twice.find("pre-tokenizer can grow text 32-fold"), std::string::npos) << twice;
}

TEST(GrowthBound, EveryCommandReportsItAsALoadError) {
  // `kiln tokenize` (and run/serve, which load the same way) fail with the message, exit 1.
  const std::string dir = ::testing::TempDir() + "kiln_growth_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json") << TokenizerJson(Replace(" ", std::string(100, ' ')));
  Result<ModelTokenizer> model = LoadModelTokenizer(dir);
  ASSERT_FALSE(model.has_value());
  EXPECT_NE(model.error().ToString().find("tokenizer.json"), std::string::npos) << model.error().ToString();

  std::vector<std::string> args = {"tokenize", dir, EightHundredWords(), "--ids-only"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  const auto start = std::chrono::steady_clock::now();
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int rc = RunTokenizeCommand(static_cast<int>(argv.size()), argv.data(), LoadModelTokenizer);
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::string err = ::testing::internal::GetCapturedStderr();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(out, "");
  EXPECT_NE(err.find("normalizer can grow text 100-fold"), std::string::npos) << err;
  EXPECT_LT(ms, 100.0);
  std::printf("hostile tokenizer.json refused in %.2f ms: %s", ms, err.c_str());
  std::filesystem::remove_all(dir);
}

TEST(GrowthBound, RealTokenizersAreWellInside) {
  struct Case {
    std::optional<std::string> path;
    GrowthBound normalizer, pre_tokenizer;
  };
  const Case cases[] = {
      {testing::GoldensDir() + "/../../../models/brown-gemma4/tokenizer.json", {3, 0}, {1, 0}},
      {testing::FindAsset("gemma3/tokenizer.json"), {3, 0}, {1, 0}},   // Replace " " -> "▁"; Split " "
      {testing::FindAsset("mistral/tokenizer.json"), {3, 9}, {1, 0}},  // Prepend "▁", Replace " " -> "▁"
      {testing::FindAsset("llama3/tokenizer.json"), {1, 0}, {2, 0}},   // Split regex, ByteLevel
      {testing::FindAsset("qwen3/tokenizer.json"), {3, 0}, {2, 0}},    // NFC; Split regex, ByteLevel
  };
  for (const Case& c : cases) {
    if (!c.path) continue;
    Result<Tokenizer> tok = LoadTokenizerJsonFile(*c.path);
    ASSERT_TRUE(tok.has_value()) << tok.error().ToString();
    const GrowthBound n = ComposeGrowth(tok->normalizer().Growth());
    const GrowthBound p = ComposeGrowth(tok->pre_tokenizer().Growth());
    EXPECT_EQ(std::make_pair(n.factor, n.constant_bytes), std::make_pair(c.normalizer.factor, c.normalizer.constant_bytes))
        << *c.path;
    EXPECT_EQ(std::make_pair(p.factor, p.constant_bytes), std::make_pair(c.pre_tokenizer.factor, c.pre_tokenizer.constant_bytes))
        << *c.path;
    // The bound holds on a real prompt: normalized bytes and tokens.
    const std::string text = EightHundredWords() + " caf\xC3\xA9 \xE2\x96\x81 \n\n  x";
    EXPECT_LE(tok->normalizer().Apply(text).size(), n.MaxOutputBytes(text.size()));
    EXPECT_LE(tok->Encode(text).size(), p.MaxOutputBytes(n.MaxOutputBytes(text.size())));
  }
}

// Random text rich in what grows: spaces, multi-byte characters, decomposable ones.
std::string RandomText(std::mt19937* rng, size_t chars) {
  static const std::vector<std::string> alphabet = {" ",  "  ", "a",  "Z", "\n", "\xE2\x96\x81", "\xC3\xA9",
                                                    "e\xCC\x81", "\xE1\xBE\x82", "\xEF\xAC\xAC", "\xCE\x90",
                                                    "\xF0\x9F\x98\x80", "\xEA\xB0\x81", "\xC2\xA0"};
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::string text;
  for (size_t i = 0; i < chars; ++i) text += alphabet[pick(*rng)];
  return text;
}

NormalizerStep Step(NormalizerKind kind, std::string pattern = "", std::string content = "") {
  NormalizerStep step;
  step.kind = kind;
  step.pattern = std::move(pattern);
  step.content = std::move(content);
  return step;
}

PreTokenizerStep PreStep(PreTokenizerKind kind) {
  PreTokenizerStep step;
  step.kind = kind;
  return step;
}

TEST(GrowthBound, BoundsHoldOnRandomText) {
  const std::string kSpace = "\xE2\x96\x81";  // "▁"
  Normalizer mistral;
  mistral.steps = {Step(NormalizerKind::kPrepend, "", kSpace), Step(NormalizerKind::kReplace, " ", kSpace)};
  Normalizer nfd_replace;
  nfd_replace.steps = {Step(NormalizerKind::kNfd), Step(NormalizerKind::kReplace, " ", "____")};
  Normalizer nfc;
  nfc.steps = {Step(NormalizerKind::kNfc)};
  PreTokenizer metaspace;
  metaspace.steps = {PreStep(PreTokenizerKind::kMetaspace)};
  PreTokenizer byte_level;
  byte_level.steps = {PreStep(PreTokenizerKind::kSplit), PreStep(PreTokenizerKind::kByteLevel)};
  byte_level.steps[0].literal = " ";
  byte_level.steps[1].add_prefix_space = true;
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const std::string text = RandomText(&rng, 1 + trial % 40);
    for (const Normalizer* n : {&mistral, &nfd_replace, &nfc}) {
      EXPECT_LE(n->Apply(text).size(), ComposeGrowth(n->Growth()).MaxOutputBytes(text.size())) << text;
    }
    for (const PreTokenizer* p : {&metaspace, &byte_level}) {
      std::vector<std::string> words;
      p->Apply(text, /*is_first_segment=*/true, &words);
      size_t total = 0;
      for (const std::string& w : words) total += w.size();
      EXPECT_LE(total, ComposeGrowth(p->Growth()).MaxOutputBytes(text.size())) << text;
    }
  }
}

TEST(GrowthBound, CanonicalNormalizationAtMostTriplesEveryCodePoint) {
  // The factor NFC and NFD claim (kMaxNormalizationFactor), checked over all of Unicode: NFD
  // works code point by code point and composition only shortens, so this covers any text.
  size_t worst_in = 1, worst_out = 1;
  for (char32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp < 0xE000) continue;
    std::string utf8;
    AppendUtf8(cp, &utf8);
    for (const std::string& out : {NormalizeNfd(utf8), NormalizeNfc(utf8)}) {
      ASSERT_LE(out.size(), kMaxNormalizationFactor * utf8.size()) << std::hex << static_cast<uint32_t>(cp);
      if (out.size() * worst_in > worst_out * utf8.size()) worst_in = utf8.size(), worst_out = out.size();
    }
  }
  EXPECT_EQ(worst_out, kMaxNormalizationFactor * worst_in);  // the bound is reached (U+0390: 2 -> 6)
  // ByteLevel: every byte becomes at most 2 bytes.
  for (int b = 0; b < 256; ++b) EXPECT_LE(ByteLevelEncode(std::string(1, static_cast<char>(b))).size(), 2u);
}

}  // namespace
}  // namespace kiln::tokenizer
