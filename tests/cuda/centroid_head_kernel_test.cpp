// The CUDA kernel of the sparse centroid head (OpKind::kCentroidHead) against its definition
// (tests/backends/centroid_head_cases.h), every head type, block formats placed as the placed
// model places them; skipped, with the reason, without a CUDA device.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include "../backends/centroid_head_cases.h"
#include "backends/cuda/cuda_device.h"
#include "backends/cuda/kernels/block_layout.h"
#include "backends/cuda/kernels/block_weights.cuh"
#include "backends/cuda/kernels/kernels.cuh"

namespace kiln {
namespace {

using centroid_head_test::Case;

cuda::WeightType TypeOf(DType dtype) {
  switch (dtype) {
    case DType::kF32: return cuda::WeightType::kF32;
    case DType::kBF16: return cuda::WeightType::kBF16;
    case DType::kQ8_0: return cuda::WeightType::kQ8_0;
    case DType::kQ4_0: return cuda::WeightType::kQ4_0;
    case DType::kQ4_K: return cuda::WeightType::kQ4_K;
    case DType::kQ6_K: return cuda::WeightType::kQ6_K;
    default: ADD_FAILURE() << "no head type for " << DTypeName(dtype); return cuda::WeightType::kF32;
  }
}

template <typename T>
T* Upload(const std::vector<T>& host) {
  void* device = nullptr;
  EXPECT_EQ(cudaMalloc(&device, host.size() * sizeof(T) + 16), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return static_cast<T*>(device);
}

std::vector<float> RunCuda(const Case& c) {
  const cuda::WeightType type = TypeOf(c.dtype);
  float* x = Upload(c.x);
  float* scores = Upload(c.scores);
  int32_t* ordering = Upload(c.ordering);
  uint8_t* head = Upload(c.head);
  if (cuda::IsBlockWeight(type)) {  // GGUF blocks -> the split layout the kernels read
    void* placed = nullptr;
    EXPECT_EQ(cudaMalloc(&placed, static_cast<size_t>(cuda::PlacedBlockBytes(type, c.vocab, c.hidden))), cudaSuccess);
    EXPECT_EQ(cuda::LaunchRepackBlocks(head, type, 0, c.vocab, c.vocab, c.hidden, placed, nullptr), cudaSuccess);
    cudaFree(head);
    head = static_cast<uint8_t*>(placed);
  }
  const int64_t kept = c.top_k * (c.vocab / c.centroids);
  void* scratch = nullptr;
  float* out = nullptr;
  EXPECT_EQ(cudaMalloc(&scratch, static_cast<size_t>(cuda::CentroidHeadScratchBytes(c.rows, c.top_k, kept))), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&out, static_cast<size_t>(c.rows * c.vocab) * 4), cudaSuccess);
  EXPECT_TRUE(cuda::CentroidHeadSupports(type, c.hidden, c.centroids, c.top_k));
  EXPECT_EQ(cuda::LaunchCentroidHead(x, head, type, c.vocab, c.hidden, scores, ordering, c.rows, c.centroids, c.top_k, scratch, out, nullptr),
            cudaSuccess);
  std::vector<float> host(static_cast<size_t>(c.rows * c.vocab));
  EXPECT_EQ(cudaMemcpy(host.data(), out, host.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  for (void* p : {static_cast<void*>(x), static_cast<void*>(scores), static_cast<void*>(ordering), static_cast<void*>(head), scratch,
                  static_cast<void*>(out)}) {
    cudaFree(p);
  }
  return host;
}

TEST(CentroidHeadKernel, CudaMatchesTheDefinition) {
  auto device = cuda::ProbeCudaDevice(0);
  if (!device) GTEST_SKIP() << device.error().message();
  for (const Case& c : centroid_head_test::Cases({DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K})) {
    SCOPED_TRACE(c.name);
    // The weights are expanded exactly and multiplied by f32 x: float rounding only.
    centroid_head_test::ExpectMatchesDefinition(c, RunCuda(c), 1e-5);
  }
}

TEST(CentroidHeadKernel, RefusesShapesOutsideItsBounds) {
  EXPECT_TRUE(cuda::CentroidHeadSupports(cuda::WeightType::kBF16, 1536, 2048, 32));
  EXPECT_FALSE(cuda::CentroidHeadSupports(cuda::WeightType::kBF16, 1536, cuda::kMaxHeadCentroids + 1, 32));
  EXPECT_FALSE(cuda::CentroidHeadSupports(cuda::WeightType::kBF16, 1536, 2048, cuda::kMaxHeadTopK + 1));
  EXPECT_FALSE(cuda::CentroidHeadSupports(cuda::WeightType::kBF16, cuda::kMaxHeadHidden + 1, 2048, 32));
  EXPECT_FALSE(cuda::CentroidHeadSupports(cuda::WeightType::kQ4_K, 128, 2048, 32));  // not whole 256-element blocks
  EXPECT_TRUE(cuda::CentroidHeadSupports(cuda::WeightType::kQ8_0, 128, 2048, 32));
}

}  // namespace
}  // namespace kiln
