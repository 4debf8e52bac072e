// The real Gemma 4 vocabulary (262,144 tokens, from scripts/fetch-tokenizer-assets.sh; skipped
// when absent): token bytes come from the decoder ("▁" is a space, "<0xXX>" one byte), control
// tokens are never allowed, and the real tokenization of valid documents passes the mask at every
// step with eos allowed exactly at the end.
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "constraint/matcher.h"
#include "test_util.h"
#include "tokenizer/model_tokenizer.h"

namespace kiln::constraint {
namespace {

std::optional<std::string> GemmaVocabPath() {
  const char* dir = std::getenv("KILN_ASSET_DIR");
  const char* home = std::getenv("HOME");
  const std::string base = dir != nullptr && *dir != '\0' ? dir : std::string(home ? home : "/root") + "/.cache/kiln-assets";
  const std::string path = base + "/llama.cpp/models/ggml-vocab-gemma-4.gguf";
  if (std::filesystem::exists(path)) return path;
  return std::nullopt;
}

class GemmaVocabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto path = GemmaVocabPath();
    if (!path) return;
    auto model = tokenizer::LoadModelTokenizer(*path);
    ASSERT_TRUE(model.has_value()) << model.error().ToString();
    model_ = new tokenizer::ModelTokenizer(std::move(model).value());
    auto vocab = TokenVocabulary::FromTokenizer(model_->tokenizer, model_->stop_token_ids);
    ASSERT_TRUE(vocab.has_value()) << vocab.error().ToString();
    vocab_ = new std::shared_ptr<const TokenVocabulary>(*vocab);
  }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << "Gemma 4 vocabulary not in the asset cache (scripts/fetch-tokenizer-assets.sh)";
  }
  static tokenizer::ModelTokenizer* model_;
  static std::shared_ptr<const TokenVocabulary>* vocab_;
};
tokenizer::ModelTokenizer* GemmaVocabTest::model_ = nullptr;
std::shared_ptr<const TokenVocabulary>* GemmaVocabTest::vocab_ = nullptr;

TEST_F(GemmaVocabTest, TokenBytes) {
  const TokenVocabulary& v = **vocab_;
  EXPECT_EQ(v.size(), 262144u);
  const auto space_the = model_->tokenizer.PieceToId("\xE2\x96\x81the");  // ▁the
  ASSERT_TRUE(space_the.has_value());
  EXPECT_EQ(v.TokenBytes(*space_the), " the");
  const auto byte_a9 = model_->tokenizer.PieceToId("<0xA9>");
  ASSERT_TRUE(byte_a9.has_value());
  EXPECT_EQ(v.TokenBytes(*byte_a9), "\xA9");
  const auto turn = model_->tokenizer.PieceToId("<start_of_turn>");
  if (turn) {
    EXPECT_EQ(v.TokenBytes(*turn), "");  // control token: never allowed
  }
  EXPECT_EQ(v.eos_ids(), model_->stop_token_ids);
}

TEST_F(GemmaVocabTest, RealTokenizationsPassTheMask) {
  auto grammar = testing::MustCompile(CompileJsonSchema(R"({"type": "object", "properties": {
      "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 14},
      "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["city", "days"]})"));
  ASSERT_NE(grammar, nullptr);
  std::vector<uint64_t> mask((*vocab_)->mask_words());
  for (const std::string doc : {R"({"city": "Zürich", "days": 3})",
                                "{\n  \"city\": \"東京 \\\"x\\\"\",\n  \"days\": 14,\n  \"tags\": [\"a\", \"b c\"]\n}"}) {
    Matcher m(grammar, *vocab_);
    const std::vector<TokenId> ids = model_->tokenizer.Encode(doc);
    for (TokenId id : ids) {
      ASSERT_TRUE(m.FillMask(mask).ok());
      ASSERT_TRUE((mask[id / 64] >> (id % 64)) & 1) << "token " << id << " refused in " << doc;
      for (TokenId eos : (*vocab_)->eos_ids()) EXPECT_FALSE((mask[eos / 64] >> (eos % 64)) & 1);
      ASSERT_TRUE(m.Accept(id).ok());
    }
    ASSERT_TRUE(m.FillMask(mask).ok());
    for (TokenId eos : (*vocab_)->eos_ids()) EXPECT_TRUE((mask[eos / 64] >> (eos % 64)) & 1);
    ASSERT_TRUE(m.Accept((*vocab_)->eos_ids()[0]).ok());
  }
}

// Every mask along real tokenizations equals the token-by-token reference on all 262,144 tokens:
// strings with and without maxLength (plain tokens by character count), a date pattern, numbers
// and structure (the whole trie walked), escapes and multi-byte text (the rest trie).
TEST_F(GemmaVocabTest, MasksEqualTheReferenceOnTheWholeVocabulary) {
  const TokenVocabulary& v = **vocab_;
  auto grammar = testing::MustCompile(CompileJsonSchema(R"({"type": "object", "properties": {
      "name": {"type": "string", "maxLength": 12}, "start": {"type": "string", "format": "date"},
      "days": {"type": "integer", "minimum": 1, "maximum": 14}, "note": {"type": "string"}},
      "required": ["name"]})"));
  ASSERT_NE(grammar, nullptr);
  std::vector<uint64_t> mask(v.mask_words());
  const std::string doc = "{\"name\": \"Zürich trip\", \"start\": \"2026-12-07\", \"days\": 14, "
                          "\"note\": \"東京 \\\"quoted\\\" and a very long sentence to go past sixteen characters\"}";
  Matcher m(grammar, *vocab_);
  std::string prefix;
  for (TokenId id : model_->tokenizer.Encode(doc)) {
    ASSERT_TRUE(m.FillMask(mask).ok());
    const std::vector<uint64_t> want = testing::ReferenceMask(grammar, v, prefix);
    ASSERT_EQ(mask, want) << "after " << prefix << ":" << testing::Differences(mask, want, v);
    ASSERT_TRUE(m.Accept(id).ok()) << prefix;
    prefix += v.TokenBytes(id);
  }
  ASSERT_TRUE(m.FillMask(mask).ok());
  EXPECT_EQ(mask, testing::ReferenceMask(grammar, v, prefix));
}

}  // namespace
}  // namespace kiln::constraint
