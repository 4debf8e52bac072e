// The shapes that broke the reference system: Gemma 4 12B (16 query heads x head_dim 512 on its
// full layers, one global KV head) planned without weights, at T=1 and T=Tmax, and truncated to
// every layer count from 1 to 48 as a bisection would.
#include <gtest/gtest.h>

#include "compiler/program.h"
#include "engine/model_loader.h"

namespace kiln {
namespace {

std::string RealConfig(const std::string& name) { return std::string(KILN_TEST_DATA_DIR) + "/" + name; }

// Finds the planned placement of the first value named `name` in `step`.
const Placement* FindPlacement(const StepFunction& step, const std::string& name) {
  for (const Value& value : step.graph.values()) {
    if (value.name == name) return &step.placements[static_cast<size_t>(value.id)];
  }
  return nullptr;
}

TEST(RealShapesTest, Gemma4_12BPlansAndVerifies) {
  LoadOptions options;
  options.max_tokens = 512;
  options.max_context = 32768;
  auto model = LoadedModel::Load(RealConfig("gemma-4-12b-config.json"), options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  const Program& program = (*model)->program();
  EXPECT_TRUE(VerifyProgram(program, program.arena_bytes).ok());
  const StepFunction* decode = program.FindStep("decode");
  const StepFunction* prefill = program.FindStep("prefill");
  ASSERT_NE(decode, nullptr);
  ASSERT_NE(prefill, nullptr);
  EXPECT_EQ(decode->max_tokens, 1);
  EXPECT_EQ(prefill->max_tokens, 512);
  // The full layer's query projection: [1, 16 x 512] f32 = 32768 bytes at T=1, and it has bytes
  // of its own in the arena (the reference system's heap was 2 KB short of its fp16 half).
  const Placement* q = FindPlacement(*decode, "layers.5.self_attn.q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->where, Placement::Where::kArena);
  EXPECT_EQ(q->size_bytes, 16 * 512 * 4);
  EXPECT_LE(q->offset_bytes + q->size_bytes, decode->plan.arena_bytes);
  const Placement* q_prefill = FindPlacement(*prefill, "layers.5.self_attn.q");
  EXPECT_EQ(q_prefill->size_bytes, 512 * 16 * 512 * 4);
  for (const StepFunction& step : program.steps) {
    EXPECT_LE(static_cast<double>(step.plan.arena_bytes), 1.10 * static_cast<double>(step.lower_bound_bytes)) << step.name;
  }
  // KV: 40 sliding rings of 1024 + 512 - 1 positions x 8 heads x 256, 8 full layers at 32K x 1 x 512.
  int64_t sliding = 0, full = 0;
  for (const CacheLayout& cache : program.caches) {
    if (cache.window > 0) {
      EXPECT_EQ(cache.capacity_positions, 1024 + 512 - 1);
      sliding += cache.bytes();
    } else {
      EXPECT_EQ(cache.capacity_positions, 32768);
      full += cache.bytes();
    }
  }
  EXPECT_EQ(sliding, 40LL * 2 * 1535 * 8 * 256 * 4);
  EXPECT_EQ(full, 8LL * 2 * 32768 * 1 * 512 * 4);
  // Weights as the config implies them (bf16): 11,907,350,320 parameters (docs/gemma4.md §10).
  EXPECT_EQ(program.weight_bytes(), 2LL * 11907350320LL);
}

TEST(RealShapesTest, Gemma4_12BEveryTruncationPlans) {
  LoadOptions options;
  options.max_tokens = 128;
  options.max_context = 4096;
  for (int64_t layers = 1; layers <= 48; ++layers) {
    options.num_layers = layers;
    auto model = LoadedModel::Load(RealConfig("gemma-4-12b-config.json"), options);
    ASSERT_TRUE(model.has_value()) << layers << ": " << model.error().ToString();
    const Program& program = (*model)->program();
    ASSERT_TRUE(VerifyProgram(program, program.arena_bytes).ok()) << layers;
    EXPECT_EQ((*model)->architecture().num_layers(), layers);
  }
}

TEST(RealShapesTest, EveryReleasedSizePlans) {
  // Parameter counts from docs/gemma4.md §10 (text decoder, tied embedding counted once).
  const std::pair<const char*, double> sizes[] = {{"gemma-4-e2b-config.json", 4.629e9}, {"gemma-4-e4b-config.json", 7.463e9},
                                                  {"gemma-4-26b-a4b-config.json", 25.233e9}, {"gemma-4-31b-config.json", 30.697e9}};
  for (const auto& [name, parameters] : sizes) {
    LoadOptions options;
    options.max_tokens = 256;
    options.max_context = 8192;
    auto model = LoadedModel::Load(RealConfig(name), options);
    ASSERT_TRUE(model.has_value()) << name << ": " << model.error().ToString();
    const Program& program = (*model)->program();
    EXPECT_TRUE(VerifyProgram(program, program.arena_bytes).ok()) << name;
    EXPECT_NEAR(static_cast<double>(program.weight_bytes()) / 2.0, parameters, parameters * 0.001) << name;
    for (const StepFunction& step : program.steps) {
      EXPECT_LE(static_cast<double>(step.plan.arena_bytes), 1.10 * static_cast<double>(step.lower_bound_bytes))
          << name << " " << step.name;
    }
  }
}

TEST(RealShapesTest, BareConfigCannotRun) {
  auto model = LoadedModel::Load(RealConfig("gemma-4-12b-config.json"), LoadOptions{});
  ASSERT_TRUE(model.has_value());
  auto session = (*model)->NewSession();
  ASSERT_FALSE(session.has_value());
  EXPECT_NE(session.error().message().find("is a bare config (no weights)"), std::string::npos);
}

}  // namespace
}  // namespace kiln
