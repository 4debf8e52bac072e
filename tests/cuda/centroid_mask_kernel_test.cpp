// The centroid-masked head's kernels (OpKind::kCentroidMask): the CUDA kernel and the CPU kernel
// against a reference written from the definition (docs/speculative.md), bit for bit (the op only
// selects, takes a minimum and subtracts 1): at the E2B/E4B drafters' shapes (262,144 tokens,
// 2,048 centroids, the best 32 kept) and the fixtures', with tied and NaN scores (the lower
// centroid index wins a tie, NaN ranks lowest) and token ids outside the vocabulary (skipped).
// The CUDA half is skipped, with the reason, without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "backends/cpu/kernel_context.h"
#include "backends/cuda/cuda_device.h"
#include "backends/cuda/kernels/kernels.cuh"
#include "core/thread_pool.h"

namespace kiln {
namespace {

struct Case {
  int64_t rows, vocab, centroids, top_k;
  std::vector<float> logits, scores;
  std::vector<int32_t> ordering;
};

// The definition: rank centroids by score (NaN lowest, the lower index first on a tie), keep the
// tokens of the best top_k, fill the rest with the least kept logit minus 1.
std::vector<float> Reference(const Case& c) {
  const int64_t per = c.vocab / c.centroids;
  std::vector<float> out(static_cast<size_t>(c.rows * c.vocab));
  for (int64_t r = 0; r < c.rows; ++r) {
    std::vector<int64_t> rank(static_cast<size_t>(c.centroids));
    std::iota(rank.begin(), rank.end(), 0);
    auto key = [&](int64_t i) {
      const float s = c.scores[static_cast<size_t>(r * c.centroids + i)];
      return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s;
    };
    std::stable_sort(rank.begin(), rank.end(), [&](int64_t a, int64_t b) { return key(a) > key(b); });
    std::vector<int32_t> kept;
    for (int64_t k = 0; k < c.top_k; ++k) {
      for (int64_t j = 0; j < per; ++j) {
        const int32_t id = c.ordering[static_cast<size_t>(rank[static_cast<size_t>(k)] * per + j)];
        if (id >= 0 && id < c.vocab) kept.push_back(id);
      }
    }
    const float* in = c.logits.data() + r * c.vocab;
    float least = std::numeric_limits<float>::infinity();
    for (int32_t id : kept) least = std::min(least, in[id]);
    float* y = out.data() + r * c.vocab;
    std::fill(y, y + c.vocab, least - 1.0f);
    for (int32_t id : kept) y[id] = in[id];
  }
  return out;
}

Case RandomCase(int64_t rows, int64_t vocab, int64_t centroids, int64_t top_k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  Case c{rows, vocab, centroids, top_k, {}, {}, {}};
  c.logits.resize(static_cast<size_t>(rows * vocab));
  for (float& x : c.logits) x = normal(rng);
  c.scores.resize(static_cast<size_t>(rows * centroids));
  for (float& x : c.scores) x = normal(rng);
  c.ordering.resize(static_cast<size_t>(vocab));
  std::iota(c.ordering.begin(), c.ordering.end(), 0);
  std::shuffle(c.ordering.begin(), c.ordering.end(), rng);
  return c;
}

// The awkward inputs: scores tied across centroids (and with the best), NaN scores, and ids
// outside the vocabulary in the ordering.
Case AwkwardCase() {
  Case c = RandomCase(3, 512, 16, 4, 9);
  for (int64_t r = 0; r < 3; ++r) {
    float* s = c.scores.data() + r * 16;
    s[2] = s[5] = s[11] = 10.0f;                      // a three-way tie at the top
    s[7] = s[13] = 4.0f;                              // and one for the last place kept
    s[0] = std::numeric_limits<float>::quiet_NaN();  // ranks lowest
  }
  c.ordering[2 * 32 + 3] = -1;
  c.ordering[5 * 32 + 7] = 512;
  c.ordering[11 * 32] = 1 << 30;
  return c;
}

std::vector<float> RunCpu(const Case& c) {
  Op op;
  op.kind = OpKind::kCentroidMask;
  op.attrs.top_k = c.top_k;
  ThreadPool pool(2);
  std::vector<float> out(static_cast<size_t>(c.rows * c.vocab));
  cpu::KernelContext context;
  context.op = &op;
  context.inputs[0] = {const_cast<float*>(c.logits.data()), DType::kF32, c.rows, c.vocab};
  context.inputs[1] = {const_cast<float*>(c.scores.data()), DType::kF32, c.rows, c.centroids};
  context.inputs[2] = {const_cast<int32_t*>(c.ordering.data()), DType::kI32, c.vocab, 1};
  context.output = {out.data(), DType::kF32, c.rows, c.vocab};
  context.rows = c.rows;
  context.pool = &pool;
  cpu::CentroidMaskKernel(context);
  return out;
}

std::vector<float> RunCuda(const Case& c) {
  float *logits = nullptr, *scores = nullptr, *out = nullptr;
  int32_t* ordering = nullptr;
  EXPECT_EQ(cudaMalloc(&logits, c.logits.size() * 4), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&scores, c.scores.size() * 4), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&ordering, c.ordering.size() * 4), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&out, c.logits.size() * 4), cudaSuccess);
  cudaMemcpy(logits, c.logits.data(), c.logits.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(scores, c.scores.data(), c.scores.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(ordering, c.ordering.data(), c.ordering.size() * 4, cudaMemcpyHostToDevice);
  EXPECT_TRUE(cuda::CentroidMaskSupports(c.centroids, c.top_k));
  EXPECT_EQ(cuda::LaunchCentroidMask(logits, scores, ordering, c.rows, c.vocab, c.centroids, c.top_k, out, nullptr), cudaSuccess);
  std::vector<float> host(c.logits.size());
  EXPECT_EQ(cudaMemcpy(host.data(), out, host.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(logits);
  cudaFree(scores);
  cudaFree(ordering);
  cudaFree(out);
  return host;
}

void ExpectSame(const std::vector<float>& got, const std::vector<float>& expected, const char* what) {
  ASSERT_EQ(got.size(), expected.size());
  size_t first = got.size();
  for (size_t i = 0; i < got.size() && first == got.size(); ++i) {
    if (std::memcmp(&got[i], &expected[i], 4) != 0) first = i;
  }
  EXPECT_EQ(first, got.size()) << what << " differs first at " << first << ": " << got[first % got.size()] << " vs "
                               << expected[first % got.size()];
}

std::vector<Case> Cases() {
  return {RandomCase(4, 262144, 2048, 32, 1), RandomCase(1, 262144, 2048, 32, 2), RandomCase(5, 512, 16, 4, 3), AwkwardCase()};
}

TEST(CentroidMaskKernel, CpuMatchesTheDefinition) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE("V=" + std::to_string(c.vocab) + " C=" + std::to_string(c.centroids) + " rows=" + std::to_string(c.rows));
    ExpectSame(RunCpu(c), Reference(c), "cpu");
  }
}

TEST(CentroidMaskKernel, CudaMatchesTheDefinition) {
  auto device = cuda::ProbeCudaDevice(0);
  if (!device) GTEST_SKIP() << device.error().message();
  for (const Case& c : Cases()) {
    SCOPED_TRACE("V=" + std::to_string(c.vocab) + " C=" + std::to_string(c.centroids) + " rows=" + std::to_string(c.rows));
    ExpectSame(RunCuda(c), Reference(c), "cuda");
  }
}

}  // namespace
}  // namespace kiln
