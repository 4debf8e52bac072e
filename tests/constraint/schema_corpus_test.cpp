// The schema corpus: every constrained generation parses and validates. 31 hand-written schemas
// (tests/constraint/schemas/realistic.json: tool calls, events, orders, $ref, anyOf/oneOf/allOf,
// formats, patterns) and 80 generated ones (GeneratedSchema, deterministic), run at temperature 1
// through the public API (kiln::Model: scheduler, sampler, output constraint) on the bundled
// model (models/brown-gemma4, its own 8,192-token tokenizer) with one seed (111 generations,
// about 13 s on one CPU thread), and on random-weight fixtures (tests/fixtures g31b with seeds
// 1-3 and e2b with seeds 4-5, through the byte-level tiny tokenizer of
// tests/engine/tiny_text_model.h, so outputs are spelled byte by byte; 555 generations in about
// 3 s). Every output must end with end-of-sequence inside max_tokens, parse as JSON and pass the
// independent checker of schema_validator.h.
//
// Strings, numbers and nesting in the corpus are bounded (maxLength, enum, format, pattern,
// integer ranges, maxItems, no recursion): a random model inside an unbounded string picks the
// closing quote about once in 300 tokens, the bundled model writes hundreds of digits into an
// unbounded number, and a generation cut at max_tokens could not be validated.
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../engine/tiny_text_model.h"
#include "constraint/constraint.h"
#include "kiln/kiln.h"
#include "schema_validator.h"

namespace kiln::constraint {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kGeneratedSchemas = 80;
constexpr int64_t kMaxTokens = 320;

// One random leaf or (depth allowing) container schema, every string bounded.
Json GeneratedValue(std::mt19937& rng, int depth) {
  const int kinds = depth > 0 ? 14 : 11;
  switch (rng() % kinds) {
    case 0: return {{"type", "string"}, {"maxLength", 1 + rng() % 6}};
    case 1: return {{"type", "string"}, {"minLength", 1}, {"maxLength", 2 + rng() % 4}};
    case 2: {
      Json values = Json::array();
      for (uint32_t i = 0, n = 2 + rng() % 3; i < n; ++i) values.push_back("v" + std::to_string(rng() % 100));
      return {{"enum", values}};
    }
    case 3: {
      const int64_t lo = static_cast<int64_t>(rng() % 200) - 100;
      return {{"type", "integer"}, {"minimum", lo}, {"maximum", lo + static_cast<int64_t>(rng() % 1000)}};
    }
    case 4: return {{"type", "integer"}, {"minimum", 0}, {"maximum", 9}};
    case 5: return {{"type", "integer"}, {"exclusiveMinimum", -5}, {"exclusiveMaximum", 5 + rng() % 20}};
    case 6: return {{"type", "boolean"}};
    case 7: return {{"type", "null"}};
    case 8: {
      const char* formats[] = {"date", "time", "uuid", "ipv4", "date-time"};
      return {{"type", "string"}, {"format", formats[rng() % 5]}};
    }
    case 9: {
      const char* patterns[] = {"^[a-z]{1,4}$", "^[A-F0-9]{2,3}$", "^x-[0-9]{1,3}$", "^(yes|no)$"};
      return {{"type", "string"}, {"pattern", patterns[rng() % 4]}};
    }
    case 10: return {{"const", rng() % 2 ? Json("fixed") : Json(42)}};
    case 11: {
      Json s = {{"type", "array"}, {"items", GeneratedValue(rng, depth - 1)}, {"maxItems", rng() % 3}};
      if (rng() % 2) s["minItems"] = 0;
      return s;
    }
    case 12: return {{"anyOf", {GeneratedValue(rng, depth - 1), GeneratedValue(rng, depth - 1)}}};
    default: break;
  }
  Json properties = Json::object(), required = Json::array();
  for (uint32_t i = 0, n = 1 + rng() % 3; i < n; ++i) {
    const std::string name = "p" + std::to_string(i);
    properties[name] = GeneratedValue(rng, depth - 1);
    if (rng() % 2) required.push_back(name);
  }
  Json s = {{"type", "object"}, {"properties", properties}};
  if (!required.empty()) s["required"] = required;
  return s;
}

Json GeneratedSchema(uint32_t seed) {
  std::mt19937 rng(seed);
  return GeneratedValue(rng, 2);
}

std::vector<Json> CorpusSchemas() {
  std::ifstream in(std::string(KILN_CONSTRAINT_SCHEMA_DIR) + "/realistic.json");
  std::stringstream text;
  text << in.rdbuf();
  std::vector<Json> schemas;
  for (const Json& s : Json::parse(text.str())) schemas.push_back(s);
  for (int i = 0; i < kGeneratedSchemas; ++i) schemas.push_back(GeneratedSchema(1000 + i));
  return schemas;
}

TEST(SchemaCorpusTest, HasAtLeastAHundredSchemasThatCompile) {
  const std::vector<Json> schemas = CorpusSchemas();
  EXPECT_GE(schemas.size(), 100u);
  for (const Json& s : schemas) {
    auto grammar = CompileJsonSchema(s.dump());
    EXPECT_TRUE(grammar.has_value()) << s.dump() << ": " << (grammar ? "" : grammar.error().message());
  }
}

// Control: the checker refuses what a schema forbids (so passing outputs mean something).
TEST(SchemaCorpusTest, CheckerRefusesInvalidValues) {
  std::string why;
  const Json schema = Json::parse(R"({"type": "object", "properties": {"a": {"type": "string", "maxLength": 2},
      "d": {"type": "string", "format": "date"}}, "required": ["a"]})");
  for (const char* bad : {R"({"a": "abc"})", R"({"d": "2026-01-01"})", R"({"a": "x", "d": "2026-13-01"})",
                          R"({"a": "x", "z": 1})", R"({"d": "2026-01-01", "a": "x"})"}) {
    EXPECT_FALSE(testing::Validate(schema, Json::parse(bad), schema, &why)) << bad;
  }
  EXPECT_TRUE(testing::Validate(schema, Json::parse(R"({"a": "é", "d": "2026-12-07"})"), schema, &why)) << why;
}

struct Outcome {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<Completion> completions;
};

// Generates every schema with every seed on `model_dir` (all requests queued at once: the
// scheduler runs them in batches) and checks each output. On "cuda" the rows are drawn by the
// device sampler with each request's mask applied there; the test skips where no GPU is.
void GenerateAndValidate(const std::string& model_dir, const std::vector<uint64_t>& seeds, const std::string& device = "cpu") {
  ModelOptions options;
  options.device = device;
  options.context = 512;
  options.chunk = 128;
  options.parallel = 16;
  options.threads = 1;  // tiny models: a second thread only spins waiting on a loaded machine
  const auto start = std::chrono::steady_clock::now();
  auto model = Model::Load(model_dir, options);
  if (!model.has_value() && model.error().code() == ErrorCode::kDeviceUnavailable) GTEST_SKIP() << model.error().message();
  ASSERT_TRUE(model.has_value()) << model.error().message();
  const std::vector<Json> schemas = CorpusSchemas();
  Outcome outcome;
  std::vector<std::pair<size_t, uint64_t>> requests;  // by request id order: (schema, seed)
  std::vector<RequestId> ids;
  for (size_t i = 0; i < schemas.size(); ++i) {
    for (uint64_t seed : seeds) {
      GenerationRequest request;
      request.prompt = "Reply with JSON: ";
      request.max_tokens = kMaxTokens;
      SamplingParams sampling;
      sampling.temperature = 1.0f;
      sampling.seed = seed;
      request.sampling = sampling;
      request.json_schema = schemas[i].dump();
      request.on_done = [&outcome](const Completion& c) {
        std::lock_guard<std::mutex> lock(outcome.mutex);
        outcome.completions.push_back(c);
        outcome.done.notify_all();
      };
      auto id = (*model)->Submit(std::move(request));
      EXPECT_TRUE(id.has_value()) << schemas[i].dump() << ": " << id.error().message();
      if (!id.has_value()) continue;
      ids.push_back(*id);
      requests.emplace_back(i, seed);
    }
  }
  std::unique_lock<std::mutex> lock(outcome.mutex);
  outcome.done.wait(lock, [&] { return outcome.completions.size() == ids.size(); });
  int64_t tokens = 0;
  for (const Completion& c : outcome.completions) {
    const size_t index = static_cast<size_t>(std::find(ids.begin(), ids.end(), c.id) - ids.begin());
    ASSERT_LT(index, ids.size());
    const Json& schema = schemas[requests[index].first];
    const std::string where = model_dir + ", schema " + std::to_string(requests[index].first) + " " +
                              schema.dump() + ", seed " + std::to_string(requests[index].second) +
                              ", output: " + c.text;
    tokens += static_cast<int64_t>(c.tokens.size());
    ASSERT_FALSE(c.error.has_value()) << where << ": " << c.error->message();
    EXPECT_EQ(c.stop_reason, "eos") << where;
    if (c.stop_reason != "eos") continue;
    const Json value = Json::parse(c.text, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(value.is_discarded()) << "does not parse: " << where;
    if (value.is_discarded()) continue;
    std::string why;
    EXPECT_TRUE(testing::Validate(schema, value, schema, &why)) << why << ": " << where;
  }
  std::printf("%s: %zu generations, %lld tokens, %.1f s\n", model_dir.c_str(), ids.size(),
              static_cast<long long>(tokens), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

TEST(SchemaCorpusTest, BundledModelGenerationsValidate) {
  GenerateAndValidate(KILN_BUNDLED_MODEL_DIR, {1});
}

// The same on the GPU: the masks reach the device sampler (scheduler rows, several seeds), and
// every output still validates.
TEST(SchemaCorpusTest, CudaGenerationsValidate) {
  GenerateAndValidate(KILN_BUNDLED_MODEL_DIR, {1, 2, 3}, "cuda");
  kiln::testing::TextModelDir dir(std::string(KILN_FIXTURES_DIR) + "/g31b", ::testing::TempDir() + "/kiln_corpus_cuda_g31b");
  GenerateAndValidate(dir.path(), {6, 7}, "cuda");
}

TEST(SchemaCorpusTest, RandomWeightFixtureGenerationsValidate) {
  const std::pair<const char*, std::vector<uint64_t>> runs[] = {{"g31b", {1, 2, 3}}, {"e2b", {4, 5}}};
  for (const auto& [fixture, seeds] : runs) {
    kiln::testing::TextModelDir dir(std::string(KILN_FIXTURES_DIR) + "/" + fixture,
                                    ::testing::TempDir() + "/kiln_corpus_" + fixture);
    GenerateAndValidate(dir.path(), seeds);
  }
}

}  // namespace
}  // namespace kiln::constraint
