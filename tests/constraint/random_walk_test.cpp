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
#include "test_util.h"

namespace kiln::constraint {
namespace {

using Json = nlohmann::ordered_json;

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

std::string Pointer(const std::string& ref) { return ref.substr(1); }

size_t CodepointCount(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The JSON Schema subset of json_schema.cpp, checked directly on the parsed value.
bool Validate(const Json& s, const Json& v, const Json& root, std::string* why) {
  auto fail = [&](const std::string& what) { *why = what + " for " + v.dump(); return false; };
  if (s.is_boolean()) return s.get<bool>() || fail("schema false");
  if (s.contains("$ref")) return Validate(root.at(Json::json_pointer(Pointer(s["$ref"]))), v, root, why);
  for (const char* key : {"anyOf", "oneOf"}) {
    if (!s.contains(key)) continue;
    for (const Json& sub : s[key]) {
      std::string ignored;
      if (Validate(sub, v, root, &ignored)) return true;
    }
    return fail(std::string("no ") + key + " branch matches");
  }
  if (s.contains("allOf")) {
    for (const Json& sub : s["allOf"]) if (!Validate(sub, v, root, why)) return false;
  }
  if (s.contains("const") && v != s["const"]) return fail("const");
  if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end()) return fail("enum");
  if (s.contains("type")) {
    std::vector<std::string> types;
    if (s["type"].is_string()) types.push_back(s["type"]); else for (const Json& t : s["type"]) types.push_back(t);
    bool ok = false;
    for (const std::string& t : types) {
      ok |= (t == "object" && v.is_object()) || (t == "array" && v.is_array()) ||
            (t == "string" && v.is_string()) || (t == "integer" && v.is_number_integer()) ||
            (t == "number" && v.is_number()) || (t == "boolean" && v.is_boolean()) ||
            (t == "null" && v.is_null());
    }
    if (!ok) return fail("type");
  }
  if (v.is_object() && s.contains("properties")) {
    const Json& props = s["properties"];
    if (s.contains("required")) {
      for (const Json& r : s["required"]) if (!v.contains(r.get<std::string>())) return fail("required " + r.dump());
    }
    size_t last_index = 0;
    for (const auto& [key, value] : v.items()) {
      size_t index = 0;
      bool listed = false;
      for (const auto& [name, sub] : props.items()) {
        ++index;
        if (name != key) continue;
        listed = true;
        if (index <= last_index) return fail("property order");
        last_index = index;
        if (!Validate(sub, value, root, why)) return false;
      }
      if (listed) continue;
      const Json extra = s.value("additionalProperties", Json(false));
      if (!Validate(extra, value, root, why)) return fail("additional property " + key);
    }
  }
  if (v.is_array()) {
    const size_t n = v.size();
    if (s.contains("minItems") && n < s["minItems"].get<size_t>()) return fail("minItems");
    if (s.contains("maxItems") && n > s["maxItems"].get<size_t>()) return fail("maxItems");
    size_t prefix = 0;
    if (s.contains("prefixItems")) {
      prefix = s["prefixItems"].size();
      for (size_t i = 0; i < std::min(prefix, n); ++i) if (!Validate(s["prefixItems"][i], v[i], root, why)) return false;
    }
    if (s.contains("items")) {
      for (size_t i = prefix; i < n; ++i) if (!Validate(s["items"], v[i], root, why)) return false;
    }
  }
  if (v.is_string()) {
    const std::string str = v.get<std::string>();
    if (s.contains("minLength") && CodepointCount(str) < s["minLength"].get<size_t>()) return fail("minLength");
    if (s.contains("maxLength") && CodepointCount(str) > s["maxLength"].get<size_t>()) return fail("maxLength");
    if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>()))) return fail("pattern");
  }
  if (v.is_number()) {
    const double d = v.get<double>();
    if (s.contains("minimum") && d < s["minimum"].get<double>()) return fail("minimum");
    if (s.contains("maximum") && d > s["maximum"].get<double>()) return fail("maximum");
  }
  return true;
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
