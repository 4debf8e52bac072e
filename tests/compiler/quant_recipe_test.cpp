// Quantization recipes: names, llama.cpp's extra-bits rule, the dtype each kind of weight is
// proposed, and, compiled for the real Gemma 4 E2B and 26B-A4B configs, the per-layer Q4_K_M
// choices quantization.md section 4 derives from llama-quantize.
#include <gtest/gtest.h>

#include <set>

#include "compiler/quant_recipe.h"
#include "engine/model_loader.h"

namespace kiln {
namespace {

std::string RealConfig(const std::string& name) { return std::string(KILN_TEST_DATA_DIR) + "/" + name; }

TEST(QuantRecipeTest, NamesRoundTripAndUnknownNamesAreRefused) {
  for (QuantRecipe recipe : {QuantRecipe::kQ8_0, QuantRecipe::kQ4_0, QuantRecipe::kQ4_K_M, QuantRecipe::kQ6_K, QuantRecipe::kFp8}) {
    EXPECT_EQ(QuantRecipeFromName(QuantRecipeName(recipe)), recipe);
  }
  EXPECT_EQ(QuantRecipeFromName("Q4_K_M"), QuantRecipe::kQ4_K_M);  // as llama.cpp users write it
  EXPECT_EQ(QuantRecipeFromName("none"), std::nullopt);             // not a recipe one asks for
  EXPECT_EQ(QuantRecipeFromName("q5_k_m"), std::nullopt);
  EXPECT_EQ(QuantRecipeFromName(""), std::nullopt);
  EXPECT_EQ(QuantRecipeNames(), "q8_0, q4_0, q4_k_m, q6_k, fp8");
}

TEST(QuantRecipeTest, LayerOfParsesTheLayerPrefix) {
  EXPECT_EQ(LayerOf("layers.12.mlp.down_proj.weight"), 12);
  EXPECT_EQ(LayerOf("layers.0.self_attn.v_proj.weight"), 0);
  EXPECT_EQ(LayerOf("embed_tokens.weight"), -1);
  EXPECT_EQ(LayerOf("layers.x.mlp"), -1);
  EXPECT_EQ(LayerOf("layers.3"), -1);
}

// use_more_bits(i, n): i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2.
TEST(QuantRecipeTest, UseMoreBitsMatchesLlamaCpp) {
  // E2B's 15 attn_v tensors: n/8 = 1, 7n/8 = 13 -> {0} + {3, 6, 9, 12} + {13, 14}.
  std::set<int64_t> chosen;
  for (int64_t i = 0; i < 15; ++i) if (UseMoreBits(i, 15)) chosen.insert(i);
  EXPECT_EQ(chosen, (std::set<int64_t>{0, 3, 6, 9, 12, 13, 14}));
  // E2B's 35 layers of ffn_down: 0-3, 6, 9, ..., 27, 30-34: 17 layers.
  chosen.clear();
  for (int64_t i = 0; i < 35; ++i) if (UseMoreBits(i, 35)) chosen.insert(i);
  EXPECT_EQ(chosen, (std::set<int64_t>{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31, 32, 33, 34}));
}

WeightUse Linear(const std::string& name, std::vector<int64_t> shape) { return {name, DType::kBF16, std::move(shape), {{OpKind::kLinear, 1}}}; }

// A two-layer model whose rows are whole 256-element blocks.
std::vector<WeightUse> TinyModel() {
  return {
      {"embed_tokens.weight", DType::kBF16, {1024, 256}, {{OpKind::kEmbed, 1}, {OpKind::kLinear, 1}}},  // tied LM head
      {"norm.weight", DType::kBF16, {256}, {{OpKind::kRmsNorm, 1}}},
      Linear("layers.0.self_attn.q_proj.weight", {512, 256}),
      Linear("layers.0.self_attn.v_proj.weight", {256, 256}),
      Linear("layers.0.mlp.down_proj.weight", {256, 512}),
      Linear("layers.1.self_attn.q_proj.weight", {512, 256}),
      Linear("layers.1.mlp.down_proj.weight", {256, 512}),
      Linear("per_layer_model_projection.weight", {512, 256}),
      {"layers.1.router.proj.weight", DType::kBF16, {8, 256}, {{OpKind::kMoe, 2}}},
      {"layers.1.experts.down_proj", DType::kBF16, {8, 256, 512}, {{OpKind::kMoe, 6}}},
      {"layers.1.layer_scalar", DType::kBF16, {1}, {{OpKind::kScaleByWeight, 1}}},
  };
}

std::vector<DType> FirstChoices(QuantRecipe recipe) {
  const std::vector<WeightUse> uses = TinyModel();
  auto proposals = ProposeDTypes(recipe, uses);
  EXPECT_TRUE(proposals.has_value()) << proposals.error().ToString();
  std::vector<DType> first;
  // kI32 marks "kept at source precision" here.
  for (const std::vector<DType>& p : *proposals) first.push_back(p.empty() ? DType::kI32 : p.front());
  return first;
}

TEST(QuantRecipeTest, EachRecipeProposesTheLlamaCppTypes) {
  constexpr DType kKept = DType::kI32, Q8 = DType::kQ8_0, Q4 = DType::kQ4_0, Q4K = DType::kQ4_K, Q6K = DType::kQ6_K, F8 = DType::kF8_E4M3;
  //                       embed  norm   q0    v0    down0  q1    down1  ple_proj router experts_down scalar
  EXPECT_EQ(FirstChoices(QuantRecipe::kQ8_0), (std::vector<DType>{Q8, kKept, Q8, Q8, Q8, Q8, Q8, kKept, kKept, Q8, kKept}));
  EXPECT_EQ(FirstChoices(QuantRecipe::kQ4_0), (std::vector<DType>{Q6K, kKept, Q4, Q4, Q4, Q4, Q4, kKept, kKept, Q4, kKept}));
  // ffn_down over 2 layers: use_more_bits(i, 2) holds for i >= 7*2/8 = 1 only. The one attn_v:
  // use_more_bits(0, 1) holds (7*1/8 = 0 <= 0).
  EXPECT_EQ(FirstChoices(QuantRecipe::kQ4_K_M), (std::vector<DType>{Q6K, kKept, Q4K, Q6K, Q4K, Q4K, Q6K, kKept, kKept, Q6K, kKept}));
  EXPECT_EQ(FirstChoices(QuantRecipe::kQ6_K), (std::vector<DType>{Q6K, kKept, Q6K, Q6K, Q6K, Q6K, Q6K, kKept, kKept, Q6K, kKept}));
  // FP8 checkpoints keep the embedding (and the LM head tied to it) at source precision.
  EXPECT_EQ(FirstChoices(QuantRecipe::kFp8), (std::vector<DType>{kKept, kKept, F8, F8, F8, F8, F8, kKept, kKept, F8, kKept}));
}

TEST(QuantRecipeTest, KQuantsFallBackToThirtyTwoElementBlocks) {
  const std::vector<WeightUse> uses = TinyModel();
  auto proposals = ProposeDTypes(QuantRecipe::kQ4_K_M, uses);
  ASSERT_TRUE(proposals.has_value());
  EXPECT_EQ((*proposals)[2], (std::vector<DType>{DType::kQ4_K, DType::kQ5_0, DType::kQ4_0}));
  EXPECT_EQ((*proposals)[0], (std::vector<DType>{DType::kQ6_K, DType::kQ8_0}));
}

TEST(QuantRecipeTest, AnAlreadyQuantizedWeightIsRefused) {
  std::vector<WeightUse> uses = TinyModel();
  uses[2].source_dtype = DType::kQ4_0;
  auto proposals = ProposeDTypes(QuantRecipe::kQ8_0, uses);
  ASSERT_FALSE(proposals.has_value());
  EXPECT_EQ(proposals.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(proposals.error().message(),
            "quantization recipe q8_0 asked for, but tensor 'layers.0.self_attn.q_proj.weight' is already stored as q4_0; "
            "kiln does not requantize quantized weights: load the model without a recipe (no --quant)");
}

// Gemma 4 E2B planned from its config (bf16 assumed) for the CPU with --quant q4_k_m: the
// layer sets of quantization.md section 4.
TEST(QuantRecipeTest, Gemma4E2BQ4KMLayerSets) {
  LoadOptions options;
  options.max_tokens = 16;
  options.max_context = 256;
  options.quant = QuantRecipe::kQ4_K_M;
  auto model = LoadedModel::Load(RealConfig("gemma-4-e2b-config.json"), options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  const Program& program = (*model)->program();
  EXPECT_EQ(program.quant_recipe, QuantRecipe::kQ4_K_M);
  std::set<int64_t> value_q6k, value_q4k, down_q6k, down_q4k;
  for (const WeightBinding& w : program.weights) {
    EXPECT_EQ(w.source_dtype, DType::kBF16) << w.name;
    const int64_t layer = LayerOf(w.name);
    if (w.name.ends_with("self_attn.v_proj.weight")) (w.dtype == DType::kQ6_K ? value_q6k : value_q4k).insert(layer);
    if (w.name.ends_with("mlp.down_proj.weight")) (w.dtype == DType::kQ6_K ? down_q6k : down_q4k).insert(layer);
    if (w.name == "embed_tokens.weight" || w.name == "embed_tokens_per_layer.weight") {
      EXPECT_EQ(w.dtype, DType::kQ6_K) << w.name;
    }
    if (w.name == "per_layer_model_projection.weight" || w.shape.size() == 1) {
      EXPECT_EQ(w.dtype, DType::kBF16) << w.name;
    }
    if (w.name.ends_with("q_proj.weight") || w.name.ends_with("mlp.gate_proj.weight")) {
      EXPECT_EQ(w.dtype, DType::kQ4_K) << w.name;
    }
  }
  // attn_v exists on layers 0-14 only (the KV-shared layers read their donor's).
  EXPECT_EQ(value_q6k, (std::set<int64_t>{0, 3, 6, 9, 12, 13, 14}));
  EXPECT_EQ(value_q4k.size() + value_q6k.size(), 15u);
  EXPECT_EQ(down_q6k, (std::set<int64_t>{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31, 32, 33, 34}));
  EXPECT_EQ(down_q4k.size(), 35u - 17u);
}

// The 26B-A4B's dense ffn_down rows (2112) and expert down rows (704) are not whole 256-blocks:
// the Q6_K picks become Q8_0 and the others Q4_0 (llama.cpp writes Q5_0, which kiln's recipes do
// not yet write); the router stays at source precision.
TEST(QuantRecipeTest, Gemma4_26BFallsBackWhereRowsAreNotWholeKBlocks) {
  LoadOptions options;
  options.max_tokens = 16;
  options.max_context = 256;
  options.quant = QuantRecipe::kQ4_K_M;
  auto model = LoadedModel::Load(RealConfig("gemma-4-26b-a4b-config.json"), options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  int64_t routers = 0, experts = 0;
  for (const WeightBinding& w : (*model)->program().weights) {
    const bool more_bits = UseMoreBits(LayerOf(w.name), 30);
    if (w.name.ends_with("mlp.down_proj.weight") || w.name.ends_with("experts.down_proj")) {
      EXPECT_EQ(w.dtype, more_bits ? DType::kQ8_0 : DType::kQ5_0) << w.name;
      experts += w.name.ends_with("experts.down_proj");
    }
    if (w.name.ends_with("router.proj.weight")) {
      EXPECT_EQ(w.dtype, DType::kBF16) << w.name;
      ++routers;
    }
    if (w.name.ends_with("experts.gate_up_proj")) {
      EXPECT_EQ(w.dtype, DType::kQ4_K) << w.name;  // rows of H = 2816
    }
  }
  EXPECT_EQ(routers, 30);
  EXPECT_EQ(experts, 30);
}

}  // namespace
}  // namespace kiln
