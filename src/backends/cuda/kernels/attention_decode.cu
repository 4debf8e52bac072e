#include <cuda_bf16.h>

#include <algorithm>

#include "backends/cuda/kernels/attention_decode.cuh"
#include "backends/cuda/kernels/device_math.cuh"

namespace kiln::cuda {

namespace {

constexpr int kPositionsPerIteration = 4;  // independent dot products in flight per warp
// A split covers at least this many positions: the grid is sized for the longest context, and
// at short ones most splits stay empty instead of each doing a few positions and a merge.
constexpr int64_t kMinSplitPositions = 32;
constexpr int kMergeThreads = 512;
static_assert(kMergeThreads >= kDecodeAttentionMaxSplits, "the merge gives every split a thread");

// The positions a split covers: [begin, end) within the query's window; `active` splits in all.
struct SplitRange {
  int64_t begin, end, active;
};
__device__ __forceinline__ SplitRange RangeOf(int64_t p, int64_t window, int split, int splits) {
  const int64_t first = window > 0 ? max(int64_t{0}, p - window + 1) : 0;
  const int64_t span = p - first + 1;
  const int64_t per_split = max(kMinSplitPositions, (span + splits - 1) / splits);
  const int64_t begin = first + split * per_split;
  return {begin, min(begin + per_split, p + 1), (span + per_split - 1) / per_split};
}

// D consecutive elements as floats, with the widest aligned loads the width allows.
template <int D>
__device__ __forceinline__ void LoadRow(const float* p, float (&out)[D]) {
  if constexpr (D % 4 == 0) {
#pragma unroll
    for (int i = 0; i < D / 4; ++i) {
      const float4 v = reinterpret_cast<const float4*>(p)[i];
      out[4 * i] = v.x, out[4 * i + 1] = v.y, out[4 * i + 2] = v.z, out[4 * i + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < D; ++i) out[i] = p[i];
  }
}

template <int D>
__device__ __forceinline__ void LoadRow(const __nv_bfloat16* p, float (&out)[D]) {
  if constexpr (D % 8 == 0) {
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      const uint4 v = reinterpret_cast<const uint4*>(p)[i];
      UnpackBf16Pair(v.x, out[8 * i], out[8 * i + 1]);
      UnpackBf16Pair(v.y, out[8 * i + 2], out[8 * i + 3]);
      UnpackBf16Pair(v.z, out[8 * i + 4], out[8 * i + 5]);
      UnpackBf16Pair(v.w, out[8 * i + 6], out[8 * i + 7]);
    }
  } else if constexpr (D % 2 == 0) {
#pragma unroll
    for (int i = 0; i < D / 2; ++i) UnpackBf16Pair(reinterpret_cast<const uint32_t*>(p)[i], out[2 * i], out[2 * i + 1]);
  } else {
#pragma unroll
    for (int i = 0; i < D; ++i) out[i] = __bfloat162float(p[i]);
  }
}

// Grid (splits, kv_heads, tokens); warps = G query heads x `sub` position groups. Each lane owns
// D = head_dim / 32 consecutive dims. Writes (max, sum, acc[head_dim]) per (token, head, split).
template <typename C, int D>
__global__ void SplitKernel(const float* __restrict__ q, const int32_t* __restrict__ positions,
                            const int32_t* __restrict__ sequences, int64_t heads, int64_t kv_heads, int64_t window,
                            float scale, const C* __restrict__ cache_k, const C* __restrict__ cache_v, KvPages pages,
                            int group, int sub, float* __restrict__ partial) {
  extern __shared__ float shared[];  // per warp: max, sum, acc[32 * D]
  constexpr int kHeadDim = 32 * D;
  const int split = blockIdx.x, splits = gridDim.x;
  const int64_t kv_head = blockIdx.y, t = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = warp % group, part = warp / group;
  const int64_t h = kv_head * group + g;
  const int64_t kv_width = kv_heads * kHeadDim;

  const SplitRange range = RangeOf(positions[t], window, split, splits);
  if (split >= range.active) return;  // the whole block: nothing to do at this length
  const int64_t begin = range.begin, end = range.end;
  const int32_t* table = LayerTable(pages, sequences[t]);

  float query[D];
  LoadRow<D>(q + (t * heads + h) * kHeadDim + lane * D, query);
#pragma unroll
  for (int d = 0; d < D; ++d) query[d] *= scale;
  float acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) acc[d] = 0.0f;
  float running_max = -INFINITY, running_sum = 0.0f;

  // The block walks tiles of `stride` (<= 32) consecutive positions; warp `part` takes positions
  // tile + part + j * sub. Lane i looks up the pool row of position tile + i once per tile (one
  // block-table read per lane, and the slots advance with the tile: one modulo up front), and the
  // warp's key rows come from the lanes by shuffle.
  const int stride = sub * kPositionsPerIteration;
  int64_t lane_slot = SlotOf(pages, begin + lane);
  for (int64_t tile = begin; tile + part < end; tile += stride) {
    const int32_t lane_row = (lane < stride && tile + lane < end) ? static_cast<int32_t>(PoolRow(pages, table, lane_slot)) : -1;
    float score[kPositionsPerIteration];
    int32_t row[kPositionsPerIteration];
#pragma unroll
    for (int j = 0; j < kPositionsPerIteration; ++j) {
      row[j] = __shfl_sync(0xffffffffu, lane_row, part + j * sub);  // -1 past the end
      float key[D];
      if (row[j] >= 0) {
        LoadRow<D>(cache_k + static_cast<int64_t>(row[j]) * kv_width + kv_head * kHeadDim + lane * D, key);
      } else {
#pragma unroll
        for (int d = 0; d < D; ++d) key[d] = 0.0f;
      }
      float dot = 0.0f;
#pragma unroll
      for (int d = 0; d < D; ++d) dot += query[d] * key[d];
      score[j] = dot;
    }
    float block_max = running_max;
#pragma unroll
    for (int j = 0; j < kPositionsPerIteration; ++j) {
      score[j] = WarpSum(score[j]);
      if (row[j] >= 0) block_max = fmaxf(block_max, score[j]);
    }
    const float correction = __expf(running_max - block_max);
    running_sum *= correction;
#pragma unroll
    for (int d = 0; d < D; ++d) acc[d] *= correction;
#pragma unroll
    for (int j = 0; j < kPositionsPerIteration; ++j) {
      if (row[j] < 0) continue;
      const float weight = __expf(score[j] - block_max);
      running_sum += weight;
      float value[D];
      LoadRow<D>(cache_v + static_cast<int64_t>(row[j]) * kv_width + kv_head * kHeadDim + lane * D, value);
#pragma unroll
      for (int d = 0; d < D; ++d) acc[d] += weight * value[d];
    }
    running_max = block_max;
    lane_slot += stride;
    while (pages.ring && lane_slot >= pages.capacity) lane_slot -= pages.capacity;
  }

  float* mine = shared + warp * (kHeadDim + 2);
  if (lane == 0) {
    mine[0] = running_max;
    mine[1] = running_sum;
  }
#pragma unroll
  for (int d = 0; d < D; ++d) mine[2 + lane * D + d] = acc[d];
  __syncthreads();
  if (part != 0) return;
  // Merge this head's position groups.
  float merged_max = -INFINITY;
  for (int s = 0; s < sub; ++s) merged_max = fmaxf(merged_max, shared[(s * group + g) * (kHeadDim + 2)]);
  float merged_sum = 0.0f, merged[D];
#pragma unroll
  for (int d = 0; d < D; ++d) merged[d] = 0.0f;
  if (merged_max != -INFINITY) {
    for (int s = 0; s < sub; ++s) {
      const float* other = shared + (s * group + g) * (kHeadDim + 2);
      const float w = __expf(other[0] - merged_max);  // 0 for an empty group (max -inf)
      merged_sum += w * other[1];
#pragma unroll
      for (int d = 0; d < D; ++d) merged[d] += w * other[2 + lane * D + d];
    }
  }
  float* out = partial + ((t * heads + h) * splits + split) * (kHeadDim + 2);
  if (lane == 0) {
    out[0] = merged_max;
    out[1] = merged_sum;
  }
#pragma unroll
  for (int d = 0; d < D; ++d) out[2 + lane * D + d] = merged[d];
}

// One block per (token, head): softmax-weighted merge of the active splits' partial states, the
// splits' weights computed in parallel, then each output dim summed over the splits.
__global__ void __launch_bounds__(kMergeThreads)
    MergeKernel(const float* __restrict__ partial, const int32_t* __restrict__ positions, int64_t heads, int64_t window,
                int splits, int64_t head_dim, float* __restrict__ out) {
  __shared__ float weight[kMergeThreads];
  __shared__ float reduce[kMergeThreads];
  const int64_t row = blockIdx.x;  // t * heads + h
  const int active = static_cast<int>(RangeOf(positions[row / heads], window, 0, splits).active);
  const float* states = partial + row * splits * (head_dim + 2);
  const int s = threadIdx.x;
  const float m = s < active ? states[s * (head_dim + 2)] : -INFINITY;
  reduce[s] = m;
  __syncthreads();
  for (int stride = kMergeThreads / 2; stride > 0; stride /= 2) {
    if (s < stride) reduce[s] = fmaxf(reduce[s], reduce[s + stride]);
    __syncthreads();
  }
  const float global_max = reduce[0];
  __syncthreads();
  weight[s] = s < active ? __expf(m - global_max) : 0.0f;
  reduce[s] = s < active ? weight[s] * states[s * (head_dim + 2) + 1] : 0.0f;
  __syncthreads();
  for (int stride = kMergeThreads / 2; stride > 0; stride /= 2) {
    if (s < stride) reduce[s] += reduce[s + stride];
    __syncthreads();
  }
  const float total = reduce[0];
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int split = 0; split < active; ++split) sum += weight[split] * states[split * (head_dim + 2) + 2 + d];
    out[row * head_dim + d] = sum / total;
  }
}

struct SplitArgs {
  const float* q;
  const int32_t* positions;
  const int32_t* sequences;
  int64_t heads, kv_heads, window;
  float scale;
  const void* cache_k;
  const void* cache_v;
  KvPages pages;
  int group, sub;
  float* partial;
};

template <typename C, int D>
cudaError_t LaunchSplit(dim3 grid, int warps, const SplitArgs& a, cudaStream_t stream) {
  const size_t shared = static_cast<size_t>(warps) * (32 * D + 2) * sizeof(float);
  auto kernel = SplitKernel<C, D>;
  if (shared > 48 * 1024) {
    if (cudaError_t s = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)); s != cudaSuccess) return s;
  }
  kernel<<<grid, warps * 32, shared, stream>>>(a.q, a.positions, a.sequences, a.heads, a.kv_heads, a.window, a.scale,
                                                static_cast<const C*>(a.cache_k), static_cast<const C*>(a.cache_v), a.pages, a.group,
                                                a.sub, a.partial);
  return cudaGetLastError();
}

template <typename C>
cudaError_t LaunchForType(int dims_per_lane, dim3 grid, int warps, const SplitArgs& a, cudaStream_t stream) {
  switch (dims_per_lane) {
    case 1: return LaunchSplit<C, 1>(grid, warps, a, stream);
    case 2: return LaunchSplit<C, 2>(grid, warps, a, stream);
    case 4: return LaunchSplit<C, 4>(grid, warps, a, stream);
    case 8: return LaunchSplit<C, 8>(grid, warps, a, stream);
    case 16: return LaunchSplit<C, 16>(grid, warps, a, stream);
  }
  return cudaErrorInvalidValue;
}

// Partial states per head the scratch of a step planned at `max_tokens` holds.
int64_t ScratchStates(int64_t max_tokens) {
  return std::min(std::max<int64_t>(max_tokens, 1), kDecodeAttentionScratchTokens) * kDecodeAttentionMaxSplits;
}

}  // namespace

bool DecodeAttentionSupports(int64_t tokens, int64_t max_tokens, int64_t heads, int64_t kv_heads, int64_t head_dim) {
  if (tokens < 1 || tokens > max_tokens || tokens > ScratchStates(max_tokens) || kv_heads < 1 || heads % kv_heads != 0) return false;
  if (tokens > 65535) return false;  // grid.z
  if (heads / kv_heads > 32 || head_dim % 32 != 0) return false;
  const int64_t per_lane = head_dim / 32;
  return per_lane == 1 || per_lane == 2 || per_lane == 4 || per_lane == 8 || per_lane == 16;
}

int64_t DecodeAttentionScratchBytes(int64_t max_tokens, int64_t heads, int64_t head_dim) {
  return ScratchStates(max_tokens) * heads * (head_dim + 2) * static_cast<int64_t>(sizeof(float));
}

cudaError_t LaunchDecodeAttention(const float* q, const int32_t* positions, const int32_t* sequences, int64_t tokens,
                                  int64_t max_tokens, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t window,
                                  float scale, const void* cache_k, const void* cache_v, WeightType cache_type,
                                  const KvPages& pages, float* scratch, float* out, int sm_count, cudaStream_t stream) {
  if (!DecodeAttentionSupports(tokens, max_tokens, heads, kv_heads, head_dim)) return cudaErrorInvalidValue;
  const int group = static_cast<int>(heads / kv_heads);
  // At least 8 warps a block: small groups split their positions further inside the block.
  const int sub = group >= 8 ? 1 : 8 / group;
  const int warps = group * sub;
  // About four blocks per SM over the whole step at the longest span the cache holds: with one KV
  // head (Gemma 4's full layers) and one sequence the split is all the parallelism there is. A
  // batch of many tokens needs fewer splits each, and the scratch holds only so many states.
  const int64_t span = window > 0 ? std::min(window, pages.capacity) : pages.capacity;
  int64_t splits = (4 * static_cast<int64_t>(std::max(sm_count, 1)) + tokens * kv_heads - 1) / (tokens * kv_heads);
  splits = std::min(splits, (span + kMinSplitPositions - 1) / kMinSplitPositions);
  splits = std::clamp<int64_t>(std::min(splits, ScratchStates(max_tokens) / tokens), 1, kDecodeAttentionMaxSplits);
  const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(kv_heads), static_cast<unsigned>(tokens));
  const int per_lane = static_cast<int>(head_dim / 32);
  const SplitArgs args{q, positions, sequences, heads, kv_heads, window, scale, cache_k, cache_v, pages, group, sub, scratch};
  cudaError_t status = cache_type == WeightType::kBF16 ? LaunchForType<__nv_bfloat16>(per_lane, grid, warps, args, stream)
                       : cache_type == WeightType::kF32 ? LaunchForType<float>(per_lane, grid, warps, args, stream)
                                                         : cudaErrorInvalidValue;
  if (status != cudaSuccess) return status;
  MergeKernel<<<static_cast<unsigned>(tokens * heads), kMergeThreads, 0, stream>>>(scratch, positions, heads, window, static_cast<int>(splits),
                                                                                   head_dim, out);
  return cudaGetLastError();
}

}  // namespace kiln::cuda
