// The CUDA backend on the fixtures: logits against transformers (the fixtures' references) and
// against the CPU backend, prefill in chunks, decode past the window, greedy continuation.
// Skipped, with the reason, on a machine without a usable CUDA device (CI); run on the GPU
// machine with scripts/cuda_tests.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "backends/cuda/cuda_device.h"
#include "engine/model_loader.h"
#include "io/json_file.h"
#include "io/npy.h"

namespace kiln {
namespace {

// f32 activations and accumulation on both sides; the GPU sums in another order and uses
// tanhf/__expf, so the bound is looser than the CPU's 1e-4 against transformers.
constexpr float kTolerance = 5e-4f;

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

class CudaParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto device = cuda::ProbeCudaDevice(0);
    if (!device) GTEST_SKIP() << device.error().message();
  }
  std::unique_ptr<LoadedModel> Load(const std::string& dir, const std::string& device, int64_t chunk) {
    LoadOptions options;
    options.device = device;
    options.max_tokens = chunk;
    options.max_context = 64;
    auto model = LoadedModel::Load(dir, options);
    EXPECT_TRUE(model.has_value()) << model.error().ToString();
    return model.has_value() ? std::move(*model) : nullptr;
  }
};

float MaxAbsDiff(const std::vector<float>& a, const float* b) {
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

TEST_P(CudaParityTest, MatchesTransformersAndTheCpuBackend) {
  const std::string dir = FixtureDir(GetParam());
  auto reference = ReadJsonFile(dir + "/reference.json");
  ASSERT_TRUE(reference.has_value());
  const auto prompt = (*reference)["prompt"].get<std::vector<int32_t>>();
  const auto decode_tokens = (*reference)["decode_tokens"].get<std::vector<int32_t>>();
  const auto greedy = (*reference)["greedy_tokens"].get<std::vector<int32_t>>();
  auto prefill = ReadNpyF32(dir + "/prefill_logits.npy");
  auto decode = ReadNpyF32(dir + "/decode_logits.npy");
  ASSERT_TRUE(prefill.has_value() && decode.has_value());
  for (int64_t chunk : {int64_t{1}, int64_t{5}, static_cast<int64_t>(prompt.size())}) {
    auto gpu = Load(dir, "cuda", chunk);
    ASSERT_NE(gpu, nullptr);
    auto session = gpu->NewSession();
    ASSERT_TRUE(session.has_value()) << session.error().ToString();
    auto logits = session->Prefill(prompt, /*all_positions=*/true);
    ASSERT_TRUE(logits.has_value()) << logits.error().ToString();
    EXPECT_LT(MaxAbsDiff(*logits, prefill->values.data()), kTolerance) << "chunk " << chunk;
  }
  auto gpu = Load(dir, "cuda", 8), cpu = Load(dir, "cpu", 8);
  auto gpu_session = gpu->NewSession();
  auto cpu_session = cpu->NewSession();
  ASSERT_TRUE(gpu_session.has_value() && cpu_session.has_value());
  ASSERT_TRUE(gpu_session->Prefill(prompt).has_value());
  ASSERT_TRUE(cpu_session->Prefill(prompt).has_value());
  const size_t vocab = static_cast<size_t>(gpu_session->vocab_size());
  for (size_t j = 0; j < decode_tokens.size(); ++j) {
    auto g = gpu_session->Step({&decode_tokens[j], 1});
    auto c = cpu_session->Step({&decode_tokens[j], 1});
    ASSERT_TRUE(g.has_value() && c.has_value());
    EXPECT_LT(MaxAbsDiff(*g, decode->values.data() + j * vocab), kTolerance) << "decode step " << j;
    EXPECT_LT(MaxAbsDiff(*g, c->data()), kTolerance) << "decode step " << j << " vs CPU";
  }
  // Greedy continuation equals transformers' generate().
  gpu_session->Reset();
  auto logits = gpu_session->Prefill(prompt);
  ASSERT_TRUE(logits.has_value());
  std::vector<int32_t> generated;
  for (size_t i = 0; i < greedy.size(); ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) - logits->begin());
    generated.push_back(next);
    logits = gpu_session->Step({&next, 1});
    ASSERT_TRUE(logits.has_value());
  }
  EXPECT_EQ(generated, greedy);
}

// bf16 checkpoints: the reference is transformers computing in f32 on the same bf16 weights.
// With an f32 KV cache and one-row steps (the GEMV path: bf16 weights, f32 activations) nothing
// is rounded that transformers does not round, so the f32 bound holds. The fast defaults round
// K and V to bf16 and, for steps over 4 rows, the GEMM inputs (cuBLASLt on tensor cores): each
// rounding is 2^-9 relative, of the order of 0.05 on these logits after the layers, bounded here
// at 0.25. The MoE variant is exempt from the bf16 bound: a rounded router logit can pick another
// expert for a token (a discontinuity, measured at about 1.0 in the logits), so it is held to
// the exact path only.
constexpr float kBf16Tolerance = 0.25f;

TEST_P(CudaParityTest, Bf16CheckpointMatchesTransformers) {
  const std::string dir = FixtureDir(GetParam());
  const bool moe = GetParam() == "a26b";
  auto reference = ReadJsonFile(dir + "/reference.json");
  ASSERT_TRUE(reference.has_value());
  const auto prompt = (*reference)["prompt"].get<std::vector<int32_t>>();
  auto expected = ReadNpyF32(dir + "/bf16/prefill_logits.npy");
  ASSERT_TRUE(expected.has_value());
  struct Case {
    int64_t chunk;
    DType cache;
    float tolerance;
  };
  std::vector<Case> cases = {{1, DType::kF32, kTolerance}};
  if (!moe) {
    for (int64_t chunk : {int64_t{1}, int64_t{3}, static_cast<int64_t>(prompt.size())}) cases.push_back({chunk, DType::kBF16, kBf16Tolerance});
  }
  for (const Case& c : cases) {
    LoadOptions options;
    options.device = "cuda";
    options.max_tokens = c.chunk;
    options.max_context = 64;
    options.kv_cache_dtype = c.cache;
    auto gpu = LoadedModel::Load(dir + "/bf16", options);
    ASSERT_TRUE(gpu.has_value()) << gpu.error().ToString();
    EXPECT_EQ((*gpu)->program().caches.front().dtype, c.cache);
    auto session = (*gpu)->NewSession();
    ASSERT_TRUE(session.has_value()) << session.error().ToString();
    auto logits = session->Prefill(prompt, /*all_positions=*/true);
    ASSERT_TRUE(logits.has_value()) << logits.error().ToString();
    const float diff = MaxAbsDiff(*logits, expected->values.data());
    std::printf("[ bf16     ] %s chunk %lld, %s cache: max |diff| %.4g\n", GetParam().c_str(), static_cast<long long>(c.chunk),
                DTypeName(c.cache), diff);
    EXPECT_LT(diff, c.tolerance) << "chunk " << c.chunk << ", " << DTypeName(c.cache) << " cache";
  }
  // Without an override, the CUDA backend picks a bf16 cache for a bf16 checkpoint.
  auto defaults = Load(dir + "/bf16", "cuda", 4);
  ASSERT_NE(defaults, nullptr);
  EXPECT_EQ(defaults->program().caches.front().dtype, DType::kBF16);
}

INSTANTIATE_TEST_SUITE_P(Variants, CudaParityTest,
                         ::testing::Values("e2b", "e4b", "g12b", "a26b", "g31b"));

}  // namespace
}  // namespace kiln
