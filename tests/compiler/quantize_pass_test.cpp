// The quantization pass asks the target: a weight takes a block format only where every op that
// reads it runs with it (else the next fallback, else its source dtype), the choice reaches every
// step graph, and the KV cache type still follows the checkpoint. Packing converts row by row,
// the same bytes on any number of threads.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "compiler/program.h"
#include "compiler/quantize_pass.h"
#include "compiler/weight_packing.h"
#include "core/quant.h"

namespace kiln {
namespace {

// Runs everything except the block formats it is told to refuse, per op kind.
class PickyCatalog : public KernelCatalog {
 public:
  std::vector<std::pair<OpKind, DType>> refused;
  std::string target_name() const override { return "test"; }
  int64_t alignment_bytes() const override { return 64; }
  Status CheckOp(const Graph& graph, const Op& op) const override {
    for (int32_t id : op.inputs) {
      if (id < 0 || graph.value(id).kind != ValueKind::kWeight) continue;
      for (const auto& [kind, dtype] : refused) {
        if (op.kind == kind && graph.value(id).dtype == dtype) return Error(ErrorCode::kUnsupported, "refused");
      }
    }
    return Status::Ok();
  }
  int64_t ScratchBytes(const Graph&, const Op&, int64_t, int64_t) const override { return 0; }
  // As the CUDA backend does: bf16 K/V for a bf16 embedding, else f32.
  DType CacheDType(const Graph& graph) const override {
    for (const Op& op : graph.ops()) {
      if (op.kind == OpKind::kEmbed) return graph.value(op.inputs[1]).dtype == DType::kBF16 ? DType::kBF16 : DType::kF32;
    }
    return DType::kF32;
  }
};

constexpr int64_t kVocab = 64, kHidden = 256;

// ids -> embed (tied table [64, 256]) -> rms_norm -> linear q [256, 256] -> lm_head (the table).
Graph TiedModel() {
  Graph g;
  const int32_t ids = g.AddInput("token_ids", DType::kI32, Shape{{Tokens()}});
  g.AddInput("positions", DType::kI32, Shape{{Tokens()}});
  g.AddInput("sequences", DType::kI32, Shape{{Tokens()}});
  g.AddInput("logit_rows", DType::kI32, Shape{{Rows()}});
  const int32_t table = g.AddWeight("embed_tokens.weight", DType::kBF16, Shape{{Const(kVocab), Const(kHidden)}});
  const int32_t norm = g.AddWeight("norm.weight", DType::kBF16, Shape{{Const(kHidden)}});
  const int32_t q = g.AddWeight("layers.0.self_attn.q_proj.weight", DType::kBF16, Shape{{Const(kHidden), Const(kHidden)}});
  const Shape row{{Tokens(), Const(kHidden)}};
  int32_t x = g.AddOp(OpKind::kEmbed, "embed", {ids, table}, {}, DType::kF32, row);
  x = g.AddOp(OpKind::kRmsNorm, "norm", {x, norm}, OpAttrs{.group_size = kHidden}, DType::kF32, row);
  x = g.AddOp(OpKind::kLinear, "q", {x, q}, {}, DType::kF32, row);
  g.MarkOutput(g.AddOp(OpKind::kLinear, "lm_head", {x, table}, {}, DType::kF32, Shape{{Tokens(), Const(kVocab)}}));
  return g;
}

WeightLookup Bf16Lookup() {
  return [](const Value& value) -> Result<WeightSpec> {
    WeightSpec spec{"model." + value.name, DType::kBF16, {}};
    for (const Dim& d : value.shape.dims) spec.shape.push_back(d.value);
    return spec;
  };
}

Result<Program> Compile(const KernelCatalog& catalog, QuantRecipe recipe) {
  std::vector<StepSpec> steps;
  steps.push_back({"decode", TiedModel(), 1, 1});
  steps.push_back({"prefill", TiedModel(), 8, 1});
  CompileOptions options;
  options.max_tokens = 8;
  options.max_context = 16;
  options.quant = recipe;
  return CompileProgram(std::move(steps), catalog, Bf16Lookup(), options);
}

DType DTypeOf(const Program& program, const std::string& name) {
  for (const WeightBinding& w : program.weights) if (w.name == name) return w.dtype;
  ADD_FAILURE() << name << " is not bound";
  return DType::kI32;
}

TEST(QuantizePassTest, EveryOpReadingTheTiedEmbeddingMustAcceptItsDType) {
  PickyCatalog catalog;
  auto all = Compile(catalog, QuantRecipe::kQ8_0);
  ASSERT_TRUE(all.has_value()) << all.error().ToString();
  EXPECT_EQ(all->quant_recipe, QuantRecipe::kQ8_0);
  EXPECT_EQ(DTypeOf(*all, "embed_tokens.weight"), DType::kQ8_0);
  EXPECT_EQ(DTypeOf(*all, "layers.0.self_attn.q_proj.weight"), DType::kQ8_0);
  EXPECT_EQ(DTypeOf(*all, "norm.weight"), DType::kBF16);
  // The gather runs Q8_0 tables, but the LM head (the same tensor) does not: kept in bf16.
  catalog.refused = {{OpKind::kLinear, DType::kQ8_0}};
  auto no_linear = Compile(catalog, QuantRecipe::kQ8_0);
  ASSERT_TRUE(no_linear.has_value()) << no_linear.error().ToString();
  EXPECT_EQ(DTypeOf(*no_linear, "embed_tokens.weight"), DType::kBF16);
  EXPECT_EQ(DTypeOf(*no_linear, "layers.0.self_attn.q_proj.weight"), DType::kBF16);
  for (const WeightBinding& w : no_linear->weights) EXPECT_EQ(w.source_dtype, DType::kBF16);
}

TEST(QuantizePassTest, ARefusedKQuantFallsBackAlongItsChain) {
  PickyCatalog catalog;
  catalog.refused = {{OpKind::kLinear, DType::kQ4_K}, {OpKind::kEmbed, DType::kQ6_K}};
  auto program = Compile(catalog, QuantRecipe::kQ4_K_M);
  ASSERT_TRUE(program.has_value()) << program.error().ToString();
  EXPECT_EQ(DTypeOf(*program, "layers.0.self_attn.q_proj.weight"), DType::kQ5_0);  // q4_k -> q5_0
  EXPECT_EQ(DTypeOf(*program, "embed_tokens.weight"), DType::kQ8_0);               // q6_k -> q8_0
  // A target without q5_0 linears either: the next in the chain.
  catalog.refused.push_back({OpKind::kLinear, DType::kQ5_0});
  auto without_q5 = Compile(catalog, QuantRecipe::kQ4_K_M);
  ASSERT_TRUE(without_q5.has_value()) << without_q5.error().ToString();
  EXPECT_EQ(DTypeOf(*without_q5, "layers.0.self_attn.q_proj.weight"), DType::kQ4_0);  // q4_k -> q5_0 -> q4_0
}

TEST(QuantizePassTest, TheChoiceReachesEveryStepAndTheCacheFollowsTheCheckpoint) {
  PickyCatalog catalog;
  auto program = Compile(catalog, QuantRecipe::kQ4_0);
  ASSERT_TRUE(program.has_value()) << program.error().ToString();
  for (const StepFunction& step : program->steps) {
    for (const Value& value : step.graph.values()) {
      if (value.kind != ValueKind::kWeight) continue;
      const Placement& placement = step.placements[static_cast<size_t>(value.id)];
      EXPECT_EQ(value.dtype, program->weights[static_cast<size_t>(placement.index)].dtype) << step.name << " " << value.name;
    }
  }
  // Quantizing the embedding (to q6_k) would make this catalog choose f32 K/V; the checkpoint is bf16.
  EXPECT_EQ(DTypeOf(*program, "embed_tokens.weight"), DType::kQ6_K);
  for (const CacheLayout& cache : program->caches) EXPECT_EQ(cache.dtype, DType::kBF16);
  // 64 x 256 in q6_k: 64 rows x 1 block x 210 bytes; q: 256 rows x 8 blocks x 18 bytes; norm 512.
  EXPECT_EQ(program->weight_bytes(), 64 * 210 + 256 * 8 * 18 + 256 * 2);
}

TEST(QuantizePassTest, WithoutARecipeNothingChanges) {
  PickyCatalog catalog;
  auto program = Compile(catalog, QuantRecipe::kNone);
  ASSERT_TRUE(program.has_value());
  EXPECT_EQ(program->quant_recipe, QuantRecipe::kNone);
  for (const WeightBinding& w : program->weights) EXPECT_EQ(w.dtype, DType::kBF16) << w.name;
}

TEST(WeightPackingTest, PacksEachRowAsQuantizeRowDoesOnAnyNumberOfThreads) {
  const WeightBinding weight{"w", "model.w", DType::kQ4_K, DType::kBF16, {37, 512}};
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<uint16_t> source(37 * 512);
  for (uint16_t& v : source) v = F32ToBf16(normal(rng));
  const std::span<const uint8_t> source_bytes(reinterpret_cast<const uint8_t*>(source.data()), source.size() * 2);
  ASSERT_EQ(PackedWeightBytes(weight), 37 * 2 * 144);

  std::vector<uint8_t> expected(static_cast<size_t>(PackedWeightBytes(weight)));
  std::vector<float> row(512);
  for (int64_t r = 0; r < 37; ++r) {
    for (int64_t k = 0; k < 512; ++k) row[static_cast<size_t>(k)] = Bf16ToF32(source[static_cast<size_t>(r * 512 + k)]);
    QuantizeRow(DType::kQ4_K, row.data(), 512, expected.data() + r * 2 * 144);
  }
  std::vector<uint8_t> alone(expected.size()), threaded(expected.size());
  ASSERT_TRUE(PackWeight(weight, source_bytes, alone, nullptr).ok());
  ThreadPool pool(3);
  ASSERT_TRUE(PackWeight(weight, source_bytes, threaded, &pool).ok());
  EXPECT_EQ(alone, expected);
  EXPECT_EQ(threaded, expected);
}

TEST(WeightPackingTest, RefusesSizesAndSourcesItCannotPack) {
  const WeightBinding weight{"w", "model.w", DType::kQ8_0, DType::kF32, {2, 64}};
  std::vector<float> source(128, 1.0f);
  std::vector<uint8_t> out(2 * 2 * 34);
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(source.data()), source.size() * 4);
  EXPECT_TRUE(PackWeight(weight, bytes, out, nullptr).ok());
  Status short_source = PackWeight(weight, bytes.first(100), out, nullptr);
  ASSERT_FALSE(short_source.ok());
  EXPECT_EQ(short_source.error().message(), "weight 'w': 100 source bytes and 136 packed bytes do not match its shape");
  const WeightBinding quantized{"w", "model.w", DType::kQ8_0, DType::kQ4_0, {2, 64}};
  Status requantize = PackWeight(quantized, bytes, out, nullptr);
  ASSERT_FALSE(requantize.ok());
  EXPECT_EQ(requantize.error().message(), "weight 'w' is stored as q4_0 in the source; only f32, bf16 and f16 weights are packed");
  const WeightBinding ragged{"w", "model.w", DType::kQ8_0, DType::kF32, {2, 48}};
  EXPECT_EQ(PackedWeightBytes(ragged), -1);
}

}  // namespace
}  // namespace kiln
