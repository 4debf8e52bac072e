#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/kernels/block_weights.cuh"
#include "backends/cuda/kernels/device_math.cuh"
#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

namespace {

constexpr int kWarp = 32;

int Blocks(int64_t count, int threads) { return static_cast<int>((count + threads - 1) / threads); }

__global__ void EmbedKernel(const int32_t* ids, const void* table, WeightType type, int64_t table_rows, int64_t width,
                            float scale, float* out) {
  const int64_t t = blockIdx.x;
  const int64_t row = (ids[t] >= 0 && ids[t] < table_rows) ? ids[t] : 0;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) out[t * width + j] = LoadWeight(table, type, row * width + j) * scale;
}

// Long groups (whole rows) or few of them: one block per group, so a one-row step still spreads
// the row over 256 threads.
constexpr int kRowNormThreads = 256;
__global__ void __launch_bounds__(kRowNormThreads)
    RowRmsNormKernel(const float* x, const void* weight, WeightType type, int64_t group, float eps, float* out) {
  __shared__ double partial[kRowNormThreads / kWarp];
  const int64_t g = blockIdx.x;
  const float* in = x + g * group;
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < group; j += blockDim.x) sum += static_cast<double>(in[j]) * in[j];
  sum = WarpSum(sum);
  if (threadIdx.x % kWarp == 0) partial[threadIdx.x / kWarp] = sum;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kRowNormThreads / kWarp; ++w) total += partial[w];
  const float inv = static_cast<float>(rsqrt(total / static_cast<double>(group) + eps));
  for (int64_t j = threadIdx.x; j < group; j += blockDim.x) {
    out[g * group + j] = in[j] * inv * (weight ? LoadWeight(weight, type, j) : 1.0f);
  }
}

// One warp per group.
__global__ void RmsNormKernel(const float* x, const void* weight, WeightType type, int64_t groups, int64_t group, float eps,
                              float* out) {
  const int64_t g = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (g >= groups) return;
  const float* in = x + g * group;
  double sum = 0.0;
  for (int64_t j = lane; j < group; j += kWarp) sum += static_cast<double>(in[j]) * in[j];
  sum = WarpSum(sum);
  const float inv = static_cast<float>(rsqrt(sum / static_cast<double>(group) + eps));
  for (int64_t j = lane; j < group; j += kWarp) {
    out[g * group + j] = in[j] * inv * (weight ? LoadWeight(weight, type, j) : 1.0f);
  }
}

// One warp per output element.
__global__ void LinearKernel(const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y) {
  const int64_t item = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (item >= rows * n) return;
  const int64_t r = item / n, c = item % n;
  float sum = 0.0f;
  for (int64_t i = lane; i < k; i += kWarp) sum += x[r * k + i] * LoadWeight(w, type, c * k + i);
  sum = WarpSum(sum);
  if (lane == 0) y[item] = sum;
}

// One thread per rotated pair (t, head, j < head_dim / 2).
__global__ void RopeKernel(const float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
                           int64_t rotary, float theta, float* out) {
  const int64_t half = head_dim / 2;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= tokens * heads * half) return;
  const int64_t j = item % half, head = (item / half) % heads, t = item / (half * heads);
  const int64_t base = t * heads * head_dim + head * head_dim;
  const float a = x[base + j], b = x[base + j + half];
  if (j >= rotary) {
    out[base + j] = a;
    out[base + j + half] = b;
    return;
  }
  // As HF: inverse frequency in f32 from theta^(2j/d), angle in f32.
  const float inv_freq = static_cast<float>(1.0 / pow(static_cast<double>(theta), static_cast<double>(2 * j) / static_cast<double>(head_dim)));
  const float angle = static_cast<float>(positions[t]) * inv_freq;
  float s, c;
  sincosf(angle, &s, &c);
  out[base + j] = a * c - b * s;
  out[base + j + half] = b * c + a * s;
}

__device__ __forceinline__ void StoreElement(float* p, float v) { *p = v; }
__device__ __forceinline__ void StoreElement(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }
__device__ __forceinline__ float LoadElement(const float* p) { return *p; }
__device__ __forceinline__ float LoadElement(const __nv_bfloat16* p) { return __bfloat162float(*p); }

template <typename C>
__global__ void KvAppendKernel(const float* k, const float* v, const int32_t* positions, const int32_t* sequences, int64_t tokens,
                               int64_t width, KvPages pages, C* cache_k, C* cache_v) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= tokens * width) return;
  const int64_t t = item / width, j = item % width;
  const int64_t row = PoolRow(pages, LayerTable(pages, sequences[t]), SlotOf(pages, positions[t]));
  StoreElement(cache_k + row * width + j, k[item]);
  StoreElement(cache_v + row * width + j, v[item]);
}

// One warp per (token, head): keys one at a time, online softmax; each lane owns head_dim/32 dims.
constexpr int kMaxDimsPerLane = 16;  // head_dim <= 512
template <typename C>
__global__ void AttentionKernel(const float* q, const int32_t* positions, const int32_t* sequences, int64_t tokens, int64_t heads,
                                int64_t kv_heads, int64_t head_dim, int64_t window, float scale, const C* cache_k, const C* cache_v,
                                KvPages pages, float* out) {
  const int64_t job = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (job >= tokens * heads) return;
  const int64_t t = job / heads, h = job % heads, kv_head = h / (heads / kv_heads);
  const int64_t kv_width = kv_heads * head_dim;
  const float* query = q + t * heads * head_dim + h * head_dim;
  const int64_t p = positions[t];
  const int32_t* table = LayerTable(pages, sequences[t]);
  const int64_t first = window > 0 ? max(int64_t{0}, p - window + 1) : 0;
  float acc[kMaxDimsPerLane];
  const int dims = static_cast<int>((head_dim + kWarp - 1) / kWarp);
  for (int d = 0; d < kMaxDimsPerLane; ++d) acc[d] = 0.0f;
  float running_max = -INFINITY, running_sum = 0.0f;
  for (int64_t pos = first; pos <= p; ++pos) {
    const int64_t row = PoolRow(pages, table, SlotOf(pages, pos));
    const C* key = cache_k + row * kv_width + kv_head * head_dim;
    float partial = 0.0f;
    for (int d = 0; d < dims; ++d) {
      const int64_t i = lane + d * kWarp;
      if (i < head_dim) partial += query[i] * LoadElement(key + i);
    }
    const float score = WarpSum(partial) * scale;
    const float new_max = fmaxf(running_max, score);
    const float correction = __expf(running_max - new_max);
    const float weight = __expf(score - new_max);
    running_sum = running_sum * correction + weight;
    const C* value = cache_v + row * kv_width + kv_head * head_dim;
    for (int d = 0; d < dims; ++d) {
      const int64_t i = lane + d * kWarp;
      acc[d] = acc[d] * correction + (i < head_dim ? weight * LoadElement(value + i) : 0.0f);
    }
    running_max = new_max;
  }
  for (int d = 0; d < dims; ++d) {
    const int64_t i = lane + d * kWarp;
    if (i < head_dim) out[t * heads * head_dim + h * head_dim + i] = acc[d] / running_sum;
  }
}

// One block per gathered row.
__global__ void GatherRowsKernel(const float* x, const int32_t* rows, int64_t columns, float* out) {
  const int64_t r = blockIdx.x;
  const float* source = x + static_cast<int64_t>(rows[r]) * columns;
  for (int64_t j = threadIdx.x; j < columns; j += blockDim.x) out[r * columns + j] = source[j];
}

__global__ void ConvertKernel(const float* x, int64_t count, WeightType type, void* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  if (type == WeightType::kBF16) {
    static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16(x[i]);
  } else {
    static_cast<__half*>(out)[i] = __float2half(x[i]);
  }
}

__global__ void RecordSampleKernel(const int32_t* token, const float* logprob, SampledSlot* slot) {
  slot->id = *token;
  slot->logprob = *logprob;
}

// splitmix64 of (seed, index): a pure function of the element, so any launch shape fills alike.
__global__ void RandomFillKernel(void* out, WeightType type, int64_t count, uint64_t seed, float center, float spread) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float unit = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    const float value = center + spread * (2.0f * unit - 1.0f);
    switch (type) {
      case WeightType::kBF16: static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16(value); break;
      case WeightType::kF16: static_cast<__half*>(out)[i] = __float2half(value); break;
      case WeightType::kF32: static_cast<float*>(out)[i] = value; break;
      default: break;  // block formats: LaunchRandomBlocks
    }
  }
}

__global__ void ElementwiseKernel(ElementwiseOp op, const float* a, const float* b, float scalar, int64_t count, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  switch (op) {
    case ElementwiseOp::kAdd: out[i] = a[i] + b[i]; break;
    case ElementwiseOp::kMul: out[i] = a[i] * b[i]; break;
    case ElementwiseOp::kScale: out[i] = a[i] * scalar; break;
    case ElementwiseOp::kGeluMul: out[i] = GeluTanh(a[i]) * b[i]; break;
    case ElementwiseOp::kSoftcap: out[i] = scalar * tanhf(a[i] / scalar); break;
  }
}

__global__ void ScaleByWeightKernel(const float* x, const void* weight, WeightType type, int64_t count, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = x[i] * LoadWeight(weight, type, 0);
}

__global__ void SliceColumnsKernel(const float* x, int64_t rows, int64_t columns, int64_t offset, int64_t width, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * width) return;
  out[i] = x[(i / width) * columns + offset + i % width];
}

__global__ void ConcatColumnsKernel(const float* a, const float* b, int64_t rows, int64_t a_columns, int64_t b_columns, float* out) {
  const int64_t width = a_columns + b_columns;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * width) return;
  const int64_t r = i / width, c = i % width;
  out[i] = c < a_columns ? a[r * a_columns + c] : b[r * b_columns + c - a_columns];
}

// One block per token (tokens run one after another through the block's scratch).
__global__ void MoeKernel(const float* x, const float* h, const void* router, const void* router_scale,
                          const void* expert_scale, const void* gate_up, const void* down, WeightType type, int64_t hidden,
                          int64_t experts, int64_t width, int64_t top_k, float eps, float* scratch, float* out) {
  const int64_t t = blockIdx.x;
  float* logits = scratch + t * (experts + 3 * width + hidden + experts);
  float* gate_up_out = logits + experts;
  float* activation = gate_up_out + 2 * width;
  float* routed = activation + width;
  int* order = reinterpret_cast<int*>(routed + hidden);
  const float* xt = x + t * hidden;
  const float* ht = h + t * hidden;
  __shared__ float shared_inv;
  __shared__ float chosen_weight;
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (int64_t j = 0; j < hidden; ++j) sum += static_cast<double>(xt[j]) * xt[j];
    shared_inv = static_cast<float>(rsqrt(sum / static_cast<double>(hidden) + eps));
  }
  __syncthreads();
  const float root = rsqrtf(static_cast<float>(hidden));
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) routed[j] = xt[j] * shared_inv * LoadWeight(router_scale, type, j) * root;
  __syncthreads();
  for (int64_t e = threadIdx.x; e < experts; e += blockDim.x) {
    float sum = 0.0f;
    for (int64_t j = 0; j < hidden; ++j) sum += routed[j] * LoadWeight(router, type, e * hidden + j);
    logits[e] = sum;
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // top-k by selection (E is small)
    for (int64_t e = 0; e < experts; ++e) order[e] = static_cast<int>(e);
    for (int64_t k = 0; k < top_k; ++k) {
      int64_t best = k;
      for (int64_t e = k + 1; e < experts; ++e) {
        if (logits[order[e]] > logits[order[best]]) best = e;
      }
      const int swap = order[k];
      order[k] = order[best];
      order[best] = swap;
    }
  }
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) out[t * hidden + j] = 0.0f;
  __syncthreads();
  float max_logit = -INFINITY;
  for (int64_t e = 0; e < experts; ++e) max_logit = fmaxf(max_logit, logits[e]);
  double total = 0.0, chosen = 0.0;
  for (int64_t e = 0; e < experts; ++e) total += exp(static_cast<double>(logits[e] - max_logit));
  for (int64_t k = 0; k < top_k; ++k) chosen += exp(static_cast<double>(logits[order[k]] - max_logit)) / total;
  for (int64_t k = 0; k < top_k; ++k) {
    const int64_t e = order[k];
    if (threadIdx.x == 0) {
      const double probability = exp(static_cast<double>(logits[e] - max_logit)) / total;
      chosen_weight = static_cast<float>(probability / chosen) * LoadWeight(expert_scale, type, e);
    }
    for (int64_t r = threadIdx.x; r < 2 * width; r += blockDim.x) {
      float sum = 0.0f;
      for (int64_t j = 0; j < hidden; ++j) sum += ht[j] * LoadWeight(gate_up, type, (e * 2 * width + r) * hidden + j);
      gate_up_out[r] = sum;
    }
    __syncthreads();
    for (int64_t r = threadIdx.x; r < width; r += blockDim.x) activation[r] = GeluTanh(gate_up_out[r]) * gate_up_out[width + r];
    __syncthreads();
    for (int64_t r = threadIdx.x; r < hidden; r += blockDim.x) {
      float sum = 0.0f;
      for (int64_t j = 0; j < width; ++j) sum += activation[j] * LoadWeight(down, type, (e * hidden + r) * width + j);
      out[t * hidden + r] += chosen_weight * sum;
    }
    __syncthreads();
  }
}

}  // namespace

cudaError_t LaunchEmbed(const int32_t* ids, const void* table, WeightType type, int64_t table_rows, int64_t tokens,
                        int64_t width, float scale, float* out, cudaStream_t stream) {
  if (IsBlockWeight(type)) return LaunchEmbedBlocks(ids, table, type, table_rows, tokens, width, scale, out, stream);
  EmbedKernel<<<static_cast<unsigned>(tokens), 256, 0, stream>>>(ids, table, type, table_rows, width, scale, out);
  return cudaGetLastError();
}

cudaError_t LaunchRmsNorm(const float* x, const void* weight, WeightType type, int64_t groups, int64_t group, float eps,
                          float* out, cudaStream_t stream) {
  if (group >= 1024 || groups < 1024) {  // few groups: a warp each would leave the GPU idle
    RowRmsNormKernel<<<static_cast<unsigned>(groups), kRowNormThreads, 0, stream>>>(x, weight, type, group, eps, out);
    return cudaGetLastError();
  }
  RmsNormKernel<<<Blocks(groups * kWarp, 256), 256, 0, stream>>>(x, weight, type, groups, group, eps, out);
  return cudaGetLastError();
}

cudaError_t LaunchLinear(const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y,
                         cudaStream_t stream) {
  LinearKernel<<<Blocks(rows * n * kWarp, 256), 256, 0, stream>>>(x, w, type, rows, n, k, y);
  return cudaGetLastError();
}

cudaError_t LaunchRope(const float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
                       int64_t rotary, float theta, float* out, cudaStream_t stream) {
  RopeKernel<<<Blocks(tokens * heads * (head_dim / 2), 256), 256, 0, stream>>>(x, positions, tokens, heads, head_dim, rotary, theta, out);
  return cudaGetLastError();
}

cudaError_t LaunchKvAppend(const float* k, const float* v, const int32_t* positions, const int32_t* sequences,
                           int64_t tokens, int64_t width, const KvPages& pages, void* cache_k, void* cache_v,
                           WeightType cache_type, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  const int blocks = Blocks(tokens * width, 256);
  if (cache_type == WeightType::kBF16) {
    KvAppendKernel<<<blocks, 256, 0, stream>>>(k, v, positions, sequences, tokens, width, pages, static_cast<__nv_bfloat16*>(cache_k),
                                               static_cast<__nv_bfloat16*>(cache_v));
  } else if (cache_type == WeightType::kF32) {
    KvAppendKernel<<<blocks, 256, 0, stream>>>(k, v, positions, sequences, tokens, width, pages, static_cast<float*>(cache_k),
                                               static_cast<float*>(cache_v));
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t LaunchAttention(const float* q, const int32_t* positions, const int32_t* sequences, int64_t tokens,
                            int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t window, float scale,
                            const void* cache_k, const void* cache_v, WeightType cache_type, const KvPages& pages,
                            float* out, cudaStream_t stream) {
  if (head_dim > kMaxDimsPerLane * kWarp) return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  const int blocks = Blocks(tokens * heads * kWarp, 128);
  if (cache_type == WeightType::kBF16) {
    AttentionKernel<<<blocks, 128, 0, stream>>>(q, positions, sequences, tokens, heads, kv_heads, head_dim, window, scale,
                                                static_cast<const __nv_bfloat16*>(cache_k), static_cast<const __nv_bfloat16*>(cache_v),
                                                pages, out);
  } else if (cache_type == WeightType::kF32) {
    AttentionKernel<<<blocks, 128, 0, stream>>>(q, positions, sequences, tokens, heads, kv_heads, head_dim, window, scale,
                                                static_cast<const float*>(cache_k), static_cast<const float*>(cache_v), pages, out);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t LaunchGatherRows(const float* x, const int32_t* rows, int64_t count, int64_t columns, float* out,
                             cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  GatherRowsKernel<<<static_cast<unsigned>(count), 256, 0, stream>>>(x, rows, columns, out);
  return cudaGetLastError();
}

cudaError_t LaunchConvert(const float* x, int64_t count, WeightType type, void* out, cudaStream_t stream) {
  if (type == WeightType::kF32) return cudaErrorInvalidValue;
  ConvertKernel<<<Blocks(count, 256), 256, 0, stream>>>(x, count, type, out);
  return cudaGetLastError();
}

cudaError_t LaunchRecordSample(const int32_t* token, const float* logprob, SampledSlot* slot, cudaStream_t stream) {
  RecordSampleKernel<<<1, 1, 0, stream>>>(token, logprob, slot);
  return cudaGetLastError();
}

cudaError_t LaunchRandomFill(void* out, WeightType type, int64_t count, uint64_t seed, float center, float spread,
                             cudaStream_t stream) {
  if (IsBlockWeight(type)) return cudaErrorInvalidValue;
  if (count <= 0) return cudaSuccess;
  const int blocks = static_cast<int>(std::min<int64_t>(Blocks(count, 256), 65536));
  RandomFillKernel<<<blocks, 256, 0, stream>>>(out, type, count, seed, center, spread);
  return cudaGetLastError();
}

cudaError_t LaunchElementwise(ElementwiseOp op, const float* a, const float* b, float scalar, int64_t count, float* out,
                              cudaStream_t stream) {
  ElementwiseKernel<<<Blocks(count, 256), 256, 0, stream>>>(op, a, b, scalar, count, out);
  return cudaGetLastError();
}

cudaError_t LaunchScaleByWeight(const float* x, const void* weight, WeightType type, int64_t count, float* out,
                                cudaStream_t stream) {
  ScaleByWeightKernel<<<Blocks(count, 256), 256, 0, stream>>>(x, weight, type, count, out);
  return cudaGetLastError();
}

cudaError_t LaunchSliceColumns(const float* x, int64_t rows, int64_t columns, int64_t offset, int64_t width, float* out,
                               cudaStream_t stream) {
  SliceColumnsKernel<<<Blocks(rows * width, 256), 256, 0, stream>>>(x, rows, columns, offset, width, out);
  return cudaGetLastError();
}

cudaError_t LaunchConcatColumns(const float* a, const float* b, int64_t rows, int64_t a_columns, int64_t b_columns, float* out,
                                cudaStream_t stream) {
  ConcatColumnsKernel<<<Blocks(rows * (a_columns + b_columns), 256), 256, 0, stream>>>(a, b, rows, a_columns, b_columns, out);
  return cudaGetLastError();
}

cudaError_t LaunchMoe(const float* x, const float* h, const void* router, const void* router_scale,
                      const void* expert_scale, const void* gate_up, const void* down, WeightType type, int64_t tokens,
                      int64_t hidden, int64_t experts, int64_t width, int64_t top_k, float eps, float* scratch, float* out,
                      cudaStream_t stream) {
  MoeKernel<<<static_cast<unsigned>(tokens), 256, 0, stream>>>(x, h, router, router_scale, expert_scale, gate_up, down, type,
                                                               hidden, experts, width, top_k, eps, scratch, out);
  return cudaGetLastError();
}

}  // namespace kiln::cuda
