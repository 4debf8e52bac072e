// The E2B/E4B MTP drafters' sparse head (OpKind::kCentroidHead; the CPU kernel is the reference:
// backends/cpu/kernels/centroid_head.cpp), in three launches:
//   rank:  one block per row chooses the top_k centroids one at a time by block-wide argmax over
//          the scores in shared memory (highest score, lower index on a tie, NaN as -inf);
//   dots:  one warp per kept token (top_k * V / C of them) computes x . w[id], the x row in shared
//          memory, the head row read in its stored format (element types, or block formats unit
//          by unit, expanded exactly as the GEMV expands them);
//   fill:  one block per row fills the row with the least kept logit minus 1 and writes the kept
//          logits over it.
// Only the kept head rows are read: 4,096 of 262,144 rows at E2B/E4B's shapes.
#include <cmath>

#include "backends/cuda/kernels/block_formats.cuh"
#include "backends/cuda/kernels/device_math.cuh"
#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

namespace {

constexpr int kRankThreads = 512;
constexpr int kDotWarps = 8;

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

__global__ void RankKernel(const float* scores, int64_t centroids, int64_t top_k, int32_t* chosen_rows) {
  extern __shared__ float keys[];  // [centroids]
  __shared__ Best warp_best[kRankThreads / 32];
  const int64_t row = blockIdx.x;
  const float* score = scores + row * centroids;
  int32_t* chosen = chosen_rows + row * top_k;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t c = threadIdx.x; c < centroids; c += blockDim.x) keys[c] = isnan(score[c]) ? -INFINITY : score[c];
  __syncthreads();
  for (int64_t k = 0; k < top_k; ++k) {
    Best best{-INFINITY, -1};
    for (int c = threadIdx.x; c < centroids; c += blockDim.x) {
      if (keys[c] != keys[c]) continue;  // taken (marked NaN below)
      if (Better(keys[c], c, best)) best = {keys[c], c};
    }
    best = WarpBest(best);
    if (lane == 0) warp_best[warp] = best;
    __syncthreads();
    if (warp == 0) {
      best = lane < kRankThreads / 32 ? warp_best[lane] : Best{-INFINITY, -1};
      best = WarpBest(best);
      if (lane == 0) {
        chosen[k] = best.index;
        keys[best.index] = NAN;  // NaN scores were made -inf above, so NaN marks a taken centroid
      }
    }
    __syncthreads();
  }
}

// The token of kept entry i of a row: its centroid's i % per-th token.
__device__ __forceinline__ int32_t KeptToken(const int32_t* chosen, const int32_t* ordering, int64_t per_centroid, int64_t i) {
  return ordering[static_cast<int64_t>(chosen[i / per_centroid]) * per_centroid + i % per_centroid];
}

template <WeightType F>
__device__ float BlockRowDot(const BlockMatrix& m, int64_t row, int64_t hidden, const float* x, int lane) {
  using Format = BlockFormat<F>;
  float sum = 0.0f;
  for (int64_t unit = lane; unit < hidden / Format::kUnitElements; unit += 32) {
    const typename Format::Unit u = Format::Load(m, row, unit);
#pragma unroll
    for (int group = 0; group < Format::kGroups; ++group) {
      BlockGroup g;
      Format::Expand(u, unit, group, g);
      const float* xg = x + Format::Offset(unit, group);
#pragma unroll
      for (int j = 0; j < 16; ++j) sum += ExactWeight(g, j) * xg[j];
    }
  }
  return sum;
}

__device__ float ElementRowDot(const void* head, WeightType type, int64_t row, int64_t hidden, const float* x, int lane) {
  float sum = 0.0f;
  for (int64_t e = lane; e < hidden; e += 32) sum += LoadWeight(head, type, row * hidden + e) * x[e];
  return sum;
}

// F = kF32 stands for every element type (the type is then read at run time).
template <WeightType F>
__global__ void DotKernel(const float* x, const void* head, WeightType type, int64_t vocab, int64_t hidden, const int32_t* ordering,
                          const int32_t* chosen_rows, int64_t top_k, int64_t per_centroid, float* values) {
  extern __shared__ float xs[];  // [hidden]
  const int64_t row = blockIdx.y, kept = top_k * per_centroid;
  for (int64_t e = threadIdx.x; e < hidden; e += blockDim.x) xs[e] = x[row * hidden + e];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kDotWarps + (threadIdx.x >> 5);
  if (i >= kept) return;
  const int32_t id = KeptToken(chosen_rows + row * top_k, ordering, per_centroid, i);
  if (id < 0 || id >= vocab) return;  // a hostile artifact's id: skipped, never read
  float sum;
  if constexpr (static_cast<int>(F) >= static_cast<int>(WeightType::kQ8_0)) {  // IsBlockWeight(F), host-only
    sum = BlockRowDot<F>(MakeBlockMatrix(F, head, vocab, hidden), id, hidden, xs, lane);
  } else {
    sum = ElementRowDot(head, type, id, hidden, xs, lane);
  }
  sum = WarpSum(sum);
  if (lane == 0) values[row * kept + i] = sum;
}

__global__ void FillKernel(const int32_t* ordering, const int32_t* chosen_rows, const float* values, int64_t vocab, int64_t top_k,
                           int64_t per_centroid, float* out) {
  __shared__ float warp_least[kRankThreads / 32];
  const int64_t row = blockIdx.x, kept = top_k * per_centroid;
  const int32_t* chosen = chosen_rows + row * top_k;
  const float* value = values + row * kept;
  float* y = out + row * vocab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float least = INFINITY;
  for (int64_t i = threadIdx.x; i < kept; i += blockDim.x) {
    const int32_t id = KeptToken(chosen, ordering, per_centroid, i);
    if (id >= 0 && id < vocab) least = fminf(least, value[i]);
  }
  for (int offset = 16; offset > 0; offset >>= 1) least = fminf(least, __shfl_xor_sync(0xffffffffu, least, offset));
  if (lane == 0) warp_least[warp] = least;
  __syncthreads();
  least = INFINITY;
  for (int w = 0; w < kRankThreads / 32; ++w) least = fminf(least, warp_least[w]);
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) y[v] = least - 1.0f;
  __syncthreads();  // the fill is visible to the block before the kept logits go over it
  for (int64_t i = threadIdx.x; i < kept; i += blockDim.x) {
    const int32_t id = KeptToken(chosen, ordering, per_centroid, i);
    if (id >= 0 && id < vocab) y[id] = value[i];
  }
}

int64_t KeptValuesBytes(int64_t rows, int64_t kept) { return (rows * kept * 4 + 255) / 256 * 256; }

}  // namespace

bool CentroidHeadSupports(WeightType head_type, int64_t hidden, int64_t centroids, int64_t top_k) {
  if (centroids > kMaxHeadCentroids || top_k > kMaxHeadTopK || hidden > kMaxHeadHidden) return false;
  if (!IsBlockWeight(head_type)) return true;
  return WithBlockFormat(head_type, [&](auto format) {
    return hidden % BlockShapeOf(decltype(format)::value).elements == 0 ? cudaSuccess : cudaErrorInvalidValue;
  }) == cudaSuccess;
}

int64_t CentroidHeadScratchBytes(int64_t rows, int64_t top_k, int64_t kept) { return KeptValuesBytes(rows, kept) + rows * top_k * 4; }

cudaError_t LaunchCentroidHead(const float* x, const void* head, WeightType head_type, int64_t vocab, int64_t hidden, const float* scores,
                               const int32_t* ordering, int64_t rows, int64_t centroids, int64_t top_k, void* scratch, float* out,
                               cudaStream_t stream) {
  if (!CentroidHeadSupports(head_type, hidden, centroids, top_k) || centroids < 1 || vocab % centroids != 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const int64_t per_centroid = vocab / centroids, kept = top_k * per_centroid;
  auto* values = static_cast<float*>(scratch);
  auto* chosen = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(scratch) + KeptValuesBytes(rows, kept));
  RankKernel<<<static_cast<unsigned>(rows), kRankThreads, static_cast<size_t>(centroids) * sizeof(float), stream>>>(scores, centroids, top_k,
                                                                                                                  chosen);
  const dim3 grid(static_cast<unsigned>((kept + kDotWarps - 1) / kDotWarps), static_cast<unsigned>(rows));
  const size_t shared = static_cast<size_t>(hidden) * sizeof(float);
  auto dots = [&](auto format) {
    DotKernel<decltype(format)::value><<<grid, kDotWarps * 32, shared, stream>>>(x, head, head_type, vocab, hidden, ordering, chosen, top_k,
                                                                                 per_centroid, values);
    return cudaGetLastError();
  };
  cudaError_t status = IsBlockWeight(head_type) ? WithBlockFormat(head_type, dots)
                                                : dots(std::integral_constant<WeightType, WeightType::kF32>{});
  if (status != cudaSuccess) return status;
  FillKernel<<<static_cast<unsigned>(rows), kRankThreads, 0, stream>>>(ordering, chosen, values, vocab, top_k, per_centroid, out);
  return cudaGetLastError();
}

}  // namespace kiln::cuda
