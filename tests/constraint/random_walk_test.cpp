// Random walks through the mask: pick random allowed tokens until the matcher accepts end of
// sequence, then check the output with an independent validator (nlohmann::json parsing plus a
// small JSON Schema checker written here, not the grammar). A mask that allowed one wrong token
// would show up as an output that does not parse or does not validate.
#include <random>
#include <regex>
#include <set>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "constraint/matcher.h"
#include "schema_validator.h"
#include "test_util.h"

namespace kiln::constraint {
namespace {

using Json = nlohmann::ordered_json;
using testing::Validate;

// A vocabulary shaped like a small BPE one: every printable ASCII byte, byte-fallback bytes for
// everything else, and multi-symbol fragments that cross JSON token boundaries.
std::vector<std::optional<std::string>> WalkVocabulary() {
  std::vector<std::optional<std::string>> v = {std::nullopt, std::nullopt};  // <pad>, <eos>
  for (int b = 0x20; b < 0x7F; ++b) v.push_back(std::string(1, static_cast<char>(b)));
  for (int b = 0x80; b < 0x100; ++b) v.push_back(std::string(1, static_cast<char>(b)));
  v.push_back("\n");
  v.push_back("\t");
  for (const char* s : {"{\"", "\":", "\": ", "\", \"", "\"}", "\"]", "true", "false", "null", "12",
                        "345", "-1", ".5", "e+3", "  ", "\n  ", "[{", "}]", "}, {", ", ", "name",
                        "\"name\": \"", "age", "tags", "zip", "value", "children", "\\n", "\\u00e9",
                        "\\\"", "abc", " the", "ing", "\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC", "0",
                        "2024-", "-01", "T12:", "00Z", "\"a\"", "\"b\"", "]}", "}}"}) {
    v.push_back(std::string(s));
  }
  return v;
}

// Samples one output; empty optional when the walk did not finish within the step budget.
std::optional<std::string> RandomWalk(Matcher& m, const std::vector<std::optional<std::string>>& vocab,
                                      std::mt19937& rng) {
  std::vector<uint64_t> mask(m.vocabulary().mask_words());
  std::string out;
  for (int step = 0; step < 4000; ++step) {
    EXPECT_TRUE(m.FillMask(mask).ok());
    std::vector<TokenId> allowed;
    std::vector<double> weights;
    for (size_t id = 0; id < vocab.size(); ++id) {
      if (!((mask[id / 64] >> (id % 64)) & 1)) continue;
      allowed.push_back(static_cast<TokenId>(id));
      // Closing tokens and eos are favoured so that walks end in a reasonable time.
      const bool closes = id == 1 || (vocab[id] && vocab[id]->find_first_of("\"]}") != std::string::npos);
      weights.push_back(closes ? 25.0 : 1.0);
    }
    EXPECT_FALSE(allowed.empty()) << "dead end after: " << out;
    if (allowed.empty()) return std::nullopt;
    const TokenId pick = allowed[std::discrete_distribution<size_t>(weights.begin(), weights.end())(rng)];
    EXPECT_TRUE(m.Accept(pick).ok());
    if (m.IsTerminated()) return out;
    out += *vocab[pick];
  }
  return std::nullopt;
}

struct WalkReport {
  int finished = 0;
  int invalid = 0;
  std::string first_failure;
};

// Walks the grammar of `grammar_schema` and validates every output against `check_schema`.
WalkReport Walk(const std::string& grammar_schema, const std::string& check_schema, int walks) {
  WalkReport report;
  const Json schema = Json::parse(check_schema);
  auto grammar = testing::MustCompile(CompileJsonSchema(grammar_schema));
  if (grammar == nullptr) return report;
  const auto vocab_bytes = WalkVocabulary();
  const TokenId eos[] = {1};
  auto vocab = TokenVocabulary::FromTokenBytes(vocab_bytes, eos);
  EXPECT_TRUE(vocab.has_value());
  std::mt19937 rng(1234);
  for (int i = 0; i < walks; ++i) {
    Matcher m(grammar, *vocab);
    std::optional<std::string> out = RandomWalk(m, vocab_bytes, rng);
    if (!out) continue;
    ++report.finished;
    const Json value = Json::parse(*out, nullptr, /*allow_exceptions=*/false);
    std::string why = "not JSON";
    if (value.is_discarded() || !Validate(schema, value, schema, &why)) {
      if (report.invalid++ == 0) report.first_failure = why + "\noutput: " + *out;
    }
  }
  return report;
}

void CheckWalks(const std::string& schema_text, int walks) {
  const WalkReport report = Walk(schema_text, schema_text, walks);
  EXPECT_EQ(report.invalid, 0) << report.first_failure;
  EXPECT_GE(report.finished, walks / 2) << "too few walks finished";
}

// The check itself can fail: walks of a looser grammar produce outputs the stricter schema
// rejects.
TEST(RandomWalk, ValidatorRejectsOutputsOfALooserGrammar) {
  const WalkReport report =
      Walk(R"({"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}}, "required": ["n"]})",
           R"({"type": "object", "properties": {"n": {"type": "integer", "maximum": 9}, "s": {"maxLength": 1}}, "required": ["n"]})",
           40);
  EXPECT_GT(report.invalid, 0);
}

TEST(RandomWalk, ObjectWithNestedTypes) {
  CheckWalks(R"({"type": "object", "properties": {
      "name": {"type": "string", "maxLength": 8},
      "age": {"type": "integer", "minimum": 0, "maximum": 120},
      "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
      "address": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                  "required": ["zip"]},
      "ok": {"type": ["boolean", "null"]}},
    "required": ["name", "age"]})", 60);
}

TEST(RandomWalk, AnyOfArraysAndTuples) {
  CheckWalks(R"({"type": "array", "minItems": 1, "maxItems": 4,
    "items": {"anyOf": [{"type": "integer", "minimum": -50, "maximum": 50},
                        {"type": "string", "minLength": 1, "maxLength": 3}, {"type": "null"},
                        {"prefixItems": [{"const": "x"}, {"type": "number"}], "items": false}]}})", 60);
}

TEST(RandomWalk, RecursiveRefs) {
  CheckWalks(R"({"$defs": {"node": {"type": "object", "properties": {
      "value": {"type": "integer"},
      "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
    "required": ["value"]}}, "$ref": "#/$defs/node"})", 40);
}

TEST(RandomWalk, AdditionalPropertiesAndFormats) {
  CheckWalks(R"({"type": "object", "properties": {"when": {"type": "string", "format": "date"}},
    "required": ["when"], "additionalProperties": {"type": "integer"}})", 40);
}

}  // namespace
}  // namespace kiln::constraint
