// The E2B/E4B MTP drafters' centroid-masked head (kCentroidMask; the CPU kernel is the reference:
// backends/cpu/kernels/centroid_mask.cpp). One block per row: the top_k centroids are chosen one
// at a time by block-wide argmax over the scores in shared memory (highest score, lower index on
// a tie, NaN as -inf), then the row is filled with the least kept logit minus 1 and the kept
// logits are written over it.
#include <cmath>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

namespace {

constexpr int kThreads = 512;

struct Best {
  float key;
  int index;  // -1: none yet
};

__device__ __forceinline__ bool Better(float key, int index, const Best& best) {
  return best.index < 0 || key > best.key || (key == best.key && index < best.index);
}

__device__ __forceinline__ Best WarpBest(Best b) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float key = __shfl_xor_sync(0xffffffffu, b.key, offset);
    const int index = __shfl_xor_sync(0xffffffffu, b.index, offset);
    if (index >= 0 && Better(key, index, b)) b = {key, index};
  }
  return b;
}

__global__ void CentroidMaskKernel(const float* logits, const float* scores, const int32_t* ordering, int64_t vocab,
                                   int64_t centroids, int64_t top_k, float* out) {
  extern __shared__ unsigned char shared[];
  float* keys = reinterpret_cast<float*>(shared);                        // [centroids]
  int* chosen = reinterpret_cast<int*>(keys + centroids);                // [top_k]
  __shared__ Best warp_best[kThreads / 32];
  __shared__ float warp_least[kThreads / 32];
  const int64_t row = blockIdx.x;
  const float* score = scores + row * centroids;
  const float* in = logits + row * vocab;
  float* y = out + row * vocab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  for (int64_t c = threadIdx.x; c < centroids; c += blockDim.x) keys[c] = isnan(score[c]) ? -INFINITY : score[c];
  __syncthreads();
  for (int64_t k = 0; k < top_k; ++k) {
    Best best{-INFINITY, -1};
    for (int c = threadIdx.x; c < centroids; c += blockDim.x) {
      bool taken = false;
      for (int64_t j = 0; j < k; ++j) taken |= chosen[j] == c;
      if (!taken && Better(keys[c], c, best)) best = {keys[c], c};
    }
    best = WarpBest(best);
    if (lane == 0) warp_best[warp] = best;
    __syncthreads();
    if (warp == 0) {
      best = lane < kThreads / 32 ? warp_best[lane] : Best{-INFINITY, -1};
      best = WarpBest(best);
      if (lane == 0) chosen[k] = best.index;
    }
    __syncthreads();
  }

  // Ids outside the vocabulary (a hostile artifact's) are skipped, never written.
  const int64_t per_centroid = vocab / centroids, kept = top_k * per_centroid;
  float least = INFINITY;
  for (int64_t i = threadIdx.x; i < kept; i += blockDim.x) {
    const int32_t id = ordering[static_cast<int64_t>(chosen[i / per_centroid]) * per_centroid + i % per_centroid];
    if (id >= 0 && id < vocab) least = fminf(least, in[id]);
  }
  for (int offset = 16; offset > 0; offset >>= 1) least = fminf(least, __shfl_xor_sync(0xffffffffu, least, offset));
  if (lane == 0) warp_least[warp] = least;
  __syncthreads();
  least = INFINITY;
  for (int w = 0; w < kThreads / 32; ++w) least = fminf(least, warp_least[w]);
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) y[v] = least - 1.0f;
  __syncthreads();  // the fill is visible to the block before the kept logits go over it
  for (int64_t i = threadIdx.x; i < kept; i += blockDim.x) {
    const int32_t id = ordering[static_cast<int64_t>(chosen[i / per_centroid]) * per_centroid + i % per_centroid];
    if (id >= 0 && id < vocab) y[id] = in[id];
  }
}

}  // namespace

bool CentroidMaskSupports(int64_t centroids, int64_t top_k) {
  return centroids <= kMaxMaskCentroids && top_k <= kMaxMaskTopK;
}

cudaError_t LaunchCentroidMask(const float* logits, const float* scores, const int32_t* ordering, int64_t rows, int64_t vocab,
                               int64_t centroids, int64_t top_k, float* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  const size_t shared = static_cast<size_t>(centroids) * sizeof(float) + static_cast<size_t>(top_k) * sizeof(int);
  CentroidMaskKernel<<<static_cast<unsigned>(rows), kThreads, shared, stream>>>(logits, scores, ordering, vocab, centroids, top_k, out);
  return cudaGetLastError();
}

}  // namespace kiln::cuda
