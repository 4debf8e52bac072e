// A whole random-weight two-layer Gemma 4 on the GPU with its matrices in each block format,
// against the same model on the GPU holding exactly the values those blocks dequantize to, in f32
// (both with an f32 KV cache, so only the linears' arithmetic differs):
//   - a 7-token prompt (every block linear, the LM head included, on the block GEMV: f32 products
//     and sums) then a decode step: within 1e-4 of the largest logit, as the CPU backend's test;
//   - a 72-token prompt (every block linear as bf16 slabs through cuBLASLt, activations rounded
//     to bf16 against the twin's full-f32 GEMMs): within 8e-2 of the largest logit. Measured on
//     an H100: the GGUF formats 1.4-2.8% with slabs at 24 tokens, 2.2-5.7% at 72; F8 5.9% and
//     4.1% (its slab linear alone matches the scalar reference within bf16 rounding in
//     QuantKernelTest; the two layers amplify its rounding more on this model), far below a
//     misplaced block or scale (of the order of the logits);
//   - a 24-token prompt: Q8_0, Q4_0, Q4_K and Q6_K on the int8 tensor-core kernel (block_mma.cuh,
//     activations rounded to int8 per 32-element block in every linear and every row), the others
//     as slabs. Measured on an H100: 4.4% (Q4_0), 4.9% (Q8_0), 6.7% (Q6_K), 10.6% (Q4_K) of the
//     largest logit; bound 15%. The kernel itself is held to its rounding bound output by output in
//     QuantKernelTest; here only a gross error (a misplaced block, scale or token) must fail.
// The embedding table (and tied LM head), q, k, v, o, gate, up and down are block weights.
// Without a usable CUDA device only the compilation for the CUDA target runs, then the test skips.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_device.h"
#include "backends/cuda/cuda_placed_model.h"
#include "backends/cuda/kernels/block_gemv.cuh"
#include "backends/cuda/kernels/block_mma.cuh"
#include "core/quant.h"
#include "models/model_family.h"
#include "random_model.h"
#include "runtime/session.h"

namespace kiln {
namespace {

// The model's weights in one storage: the block format where a matrix's rows are whole blocks
// (or, for the twin, f32 holding what those blocks dequantize to); every other weight f32.
struct Weights {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<WeightView> Views(const Program& program) const {
    std::vector<WeightView> views;
    for (size_t i = 0; i < program.weights.size(); ++i) {
      views.push_back({bytes[i].data(), program.weights[i].dtype, static_cast<int64_t>(bytes[i].size())});
    }
    return views;
  }
};

Result<Program> Compile(const ModelArchitecture& architecture, const Backend& backend, DType matrices) {
  TRY_ASSIGN(Graph graph, architecture.BuildGraph());
  std::vector<StepSpec> steps;
  steps.push_back({"decode", graph, 1, 1});
  // Up to 96 rows a step: the 72-token prompt in one (bf16 slabs), the 24-token one on the int8
  // tensor-core kernel in scratch planned for the slabs.
  steps.push_back({"prefill", graph, 96, 1});
  steps.push_back({"score", std::move(graph), 96, 96});  // the logits of every prompt position
  CompileOptions options;
  options.max_tokens = 96;
  options.max_sequences = 1;
  options.max_context = 128;
  options.cache_dtype = DType::kF32;
  WeightLookup lookup = [matrices](const Value& expected) -> Result<WeightSpec> {
    WeightSpec spec{expected.name, DType::kF32, {}};
    for (const Dim& d : expected.shape.dims) spec.shape.push_back(d.value);
    if (spec.shape.size() >= 2 && DTypeRowsFit(matrices, spec.shape.back())) spec.dtype = matrices;
    return spec;
  };
  return CompileProgram(std::move(steps), backend, lookup, options);
}

// Random values per weight (matrices ~ N(0, 1/k), vectors near 1), stored as `program` binds them;
// the twin gets the dequantized values of every block weight.
void MakeWeights(const Program& program, Weights* quantized, Weights* twin) {
  for (size_t i = 0; i < program.weights.size(); ++i) {
    const WeightBinding& binding = program.weights[i];
    const int64_t k = binding.shape.empty() ? 1 : binding.shape.back();
    int64_t rows = 1;
    for (size_t axis = 0; axis + 1 < binding.shape.size(); ++axis) rows *= binding.shape[axis];
    std::mt19937 engine(static_cast<uint32_t>(1000 + i));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(rows * k));
    const bool vector = binding.shape.size() <= 1;
    for (float& v : values) v = vector ? 1.0f + 0.1f * normal(engine) : normal(engine) / std::sqrt(static_cast<float>(k));
    std::vector<uint8_t> stored(static_cast<size_t>(binding.size_bytes()));
    std::vector<float> dequantized(values.size());
    const int64_t row_bytes = DTypeBytes(binding.dtype, k);
    for (int64_t r = 0; r < rows; ++r) {
      QuantizeRow(binding.dtype, values.data() + r * k, k, stored.data() + r * row_bytes);
      DequantizeRow(binding.dtype, stored.data() + r * row_bytes, k, dequantized.data() + r * k);
    }
    quantized->bytes.push_back(std::move(stored));
    std::vector<uint8_t> f32(dequantized.size() * 4);
    std::copy_n(reinterpret_cast<const uint8_t*>(dequantized.data()), f32.size(), f32.data());
    twin->bytes.push_back(std::move(f32));
  }
}

std::vector<float> PromptThenDecode(Session& session, const std::vector<int32_t>& prompt, int32_t next) {
  auto prefill = session.Prefill(prompt, /*all_positions=*/true);
  EXPECT_TRUE(prefill.has_value()) << prefill.error().ToString();
  auto decode = session.Step({&next, 1});
  EXPECT_TRUE(decode.has_value()) << decode.error().ToString();
  if (!prefill || !decode) return {};
  std::vector<float> logits = std::move(*prefill);
  logits.insert(logits.end(), decode->begin(), decode->end());
  return logits;
}

TEST(CudaQuantModelTest, EveryFormatRunsAWholeModelLikeItsDequantizedWeights) {
  // Widths of whole 256-element blocks: hidden 256, attention 2 x 128 (sliding) and 2 x 256 (full),
  // MLP 512; layer 0 sliding, layer 1 full.
  auto architecture = ParseArchitecture(GemmaConfig(/*vocab=*/512, /*hidden=*/256, /*layers=*/2, /*heads=*/2, /*kv_heads=*/1,
                                                    /*head_dim=*/128, /*global_head_dim=*/256, /*intermediate=*/512, /*window=*/16));
  ASSERT_TRUE(architecture.has_value()) << architecture.error().ToString();
  CudaBackend backend;
  const std::vector<int32_t> short_prompt = {2, 17, 301, 5, 511, 42, 7};
  std::vector<int32_t> long_prompt, longer_prompt;
  for (int32_t t = 0; t < 24; ++t) long_prompt.push_back((t * 37 + 11) % 512);
  for (int32_t t = 0; t < 72; ++t) longer_prompt.push_back((t * 53 + 5) % 512);
  // Compiling (the catalog's CheckOp and ScratchBytes) needs no GPU: every format first.
  const DType formats[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kF8_E4M3};
  std::vector<Program> programs, twins;
  for (DType dtype : formats) {
    SCOPED_TRACE(DTypeName(dtype));
    auto program = Compile(**architecture, backend, dtype);
    ASSERT_TRUE(program.has_value()) << program.error().ToString();
    auto twin_program = Compile(**architecture, backend, DType::kF32);
    ASSERT_TRUE(twin_program.has_value()) << twin_program.error().ToString();
    int64_t block_weights = 0;
    for (const WeightBinding& weight : program->weights) block_weights += weight.dtype == dtype;
    // The embedding (tied LM head); q, k, v, o, gate, up, down of the sliding layer; the same less v
    // on the full layer (k_eq_v).
    EXPECT_EQ(block_weights, 1 + 7 + 6);
    ASSERT_EQ(program->weights.size(), twin_program->weights.size());
    programs.push_back(std::move(*program));
    twins.push_back(std::move(*twin_program));
  }
  if (auto device = cuda::ProbeCudaDevice(0); !device) GTEST_SKIP() << device.error().message();
  for (size_t f = 0; f < programs.size(); ++f) {
    SCOPED_TRACE(DTypeName(formats[f]));
    Weights quantized, twin;
    MakeWeights(programs[f], &quantized, &twin);
    // The short prompt (7 rows) and its decode step run the block GEMV: exact products for most
    // formats (1e-4), int8 activations for Q8_0, Q4_0 and Q4_K (block_gemv.cuh), whose rounding of
    // x by up to 1/254 of each 32-element block's largest value compounds over the two layers:
    // 2.3-2.7% of the largest logit measured on an H100 with the 7 prompt rows in int8 too (0.6-1.1%
    // on an H200 when only the decode row was), bound 4%.
    const bool int8 = cuda::BlockGemvInt8Supports(cuda::TypeOf(formats[f]), 1, 256);
    const bool mma = cuda::BlockMmaSupports(cuda::TypeOf(formats[f]), 256);
    for (const auto& [prompt, tolerance] : {std::pair{short_prompt, int8 ? 4e-2f : 1e-4f}, std::pair{long_prompt, mma ? 15e-2f : 8e-2f},
                                             std::pair{longer_prompt, 8e-2f}}) {
      SCOPED_TRACE(std::to_string(prompt.size()) + "-token prompt");
      auto session = Session::Create(programs[f], backend, quantized.Views(programs[f]), {});
      ASSERT_TRUE(session.has_value()) << session.error().ToString();
      auto twin_session = Session::Create(twins[f], backend, twin.Views(twins[f]), {});
      ASSERT_TRUE(twin_session.has_value()) << twin_session.error().ToString();
      const std::vector<float> got = PromptThenDecode(*session, prompt, 77);
      const std::vector<float> want = PromptThenDecode(*twin_session, prompt, 77);
      ASSERT_EQ(got.size(), want.size());
      ASSERT_FALSE(got.empty());
      float largest = 0, worst = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        largest = std::max(largest, std::abs(want[i]));
        worst = std::max(worst, std::abs(got[i] - want[i]));
      }
      std::printf("[ %-8s ] %zu-token prompt: max |diff| %.3g, largest |logit| %.3g\n", DTypeName(formats[f]), prompt.size(), worst, largest);
      EXPECT_LE(worst, tolerance * largest + 1e-5f) << "largest |logit| " << largest;
      EXPECT_GT(largest, 0.0f);
    }
  }
}

}  // namespace
}  // namespace kiln
