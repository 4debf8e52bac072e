#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backends/cuda/kernels/fused.cuh"
#include "backends/cuda/kernels/device_math.cuh"

#include <algorithm>

namespace kiln::cuda {

namespace {

constexpr int kWarp = 32;
// One block a row for the residual chain, with a thread per kPerThread elements (at batch 1 the
// whole step is one row); each thread keeps its elements in registers between the passes.
constexpr int kRowThreads = 1024;
constexpr int kPerThread = 8;  // rows up to 8192 wide (Gemma 4: 5376 at most)

// Sum over the block, in double as the unfused RmsNorm kernel (fusing changes only the summation
// order); `shared` holds one double per warp and may be reused right after.
__device__ double BlockSum(double v, double* shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = (blockDim.x + kWarp - 1) / kWarp;
  v = WarpSum(v);
  __syncthreads();  // `shared` may still be read from a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < warps; ++w) total += shared[w];
  return total;
}

__global__ void __launch_bounds__(kRowThreads)
    ResidualNormKernel(const float* branch, const void* branch_weight, const float* residual, const void* scalar,
                       const void* next_weight, WeightType type, int64_t width, float eps, float* x_out, float* normed) {
  __shared__ double partial[kRowThreads / kWarp];
  const int64_t row = blockIdx.x;
  const float* y = branch + row * width;
  const float* x = residual + row * width;
  float values[kPerThread];
  double sum = 0.0;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t j = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    values[i] = j < width ? y[j] : 0.0f;
    sum += static_cast<double>(values[i]) * values[i];
  }
  const float inv_branch = static_cast<float>(rsqrt(BlockSum(sum, partial) / static_cast<double>(width) + eps));
  const float s = scalar ? LoadWeight(scalar, type, 0) : 1.0f;
  sum = 0.0;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t j = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (j >= width) break;
    const float added = x[j] + values[i] * inv_branch * LoadWeight(branch_weight, type, j);
    values[i] = scalar ? added * s : added;
    x_out[row * width + j] = values[i];
    sum += static_cast<double>(values[i]) * values[i];
  }
  if (!normed) return;
  const float inv_next = static_cast<float>(rsqrt(BlockSum(sum, partial) / static_cast<double>(width) + eps));
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t j = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (j >= width) break;
    normed[row * width + j] = values[i] * inv_next * LoadWeight(next_weight, type, j);
  }
}

// Rotates the pair (a, b) = (x[j], x[j + half]) of one head as the RoPE kernel does.
__device__ __forceinline__ void Rotate(float& a, float& b, int64_t j, int64_t head_dim, int64_t rotary, float theta, int32_t position) {
  if (j >= rotary) return;
  const float inv_freq = static_cast<float>(1.0 / pow(static_cast<double>(theta), static_cast<double>(2 * j) / static_cast<double>(head_dim)));
  const float angle = static_cast<float>(position) * inv_freq;
  float s, c;
  sincosf(angle, &s, &c);
  const float ra = a * c - b * s, rb = b * c + a * s;
  a = ra;
  b = rb;
}

// One block per (token, head); thread j owns the rotated pair (j, j + head_dim / 2).
__global__ void HeadNormRopeKernel(const float* x, const void* weight, WeightType type, const int32_t* positions, int64_t heads,
                                   int64_t head_dim, int64_t rotary, float theta, float eps, float* out) {
  __shared__ double partial[kRowThreads / kWarp];
  const int64_t job = blockIdx.x, t = job / heads;
  const int64_t half = head_dim / 2, j = threadIdx.x;
  const float* head = x + job * head_dim;
  const float a = j < half ? head[j] : 0.0f, b = j < half ? head[j + half] : 0.0f;
  const double sum = BlockSum(static_cast<double>(a) * a + static_cast<double>(b) * b, partial);
  if (j >= half) return;
  const float inv = static_cast<float>(rsqrt(sum / static_cast<double>(head_dim) + eps));
  float ra = a * inv * LoadWeight(weight, type, j), rb = b * inv * LoadWeight(weight, type, j + half);
  Rotate(ra, rb, j, head_dim, rotary, theta, positions[t]);
  out[job * head_dim + j] = ra;
  out[job * head_dim + j + half] = rb;
}

__device__ __forceinline__ void Store(void* cache, WeightType type, int64_t i, float v) {
  if (type == WeightType::kBF16) {
    static_cast<__nv_bfloat16*>(cache)[i] = __float2bfloat16(v);
  } else {
    static_cast<float*>(cache)[i] = v;
  }
}

// One block per (token, kv head); thread j owns the pairs (j, j + head_dim / 2) of K and of V.
__global__ void KvNormRopeAppendKernel(const float* k, const float* v, const void* k_weight, WeightType type, const int32_t* positions,
                                       const int32_t* sequences, int64_t kv_heads, int64_t head_dim, int64_t rotary, float theta,
                                       float eps, KvPages pages, void* cache_k, void* cache_v, WeightType cache_type) {
  __shared__ double partial[kRowThreads / kWarp];
  const int64_t job = blockIdx.x, t = job / kv_heads, h = job % kv_heads;
  const int64_t half = head_dim / 2, j = threadIdx.x;
  const float* key = k + job * head_dim;
  const float* value = v + job * head_dim;
  const bool mine = j < half;
  const float ka = mine ? key[j] : 0.0f, kb = mine ? key[j + half] : 0.0f;
  const float va = mine ? value[j] : 0.0f, vb = mine ? value[j + half] : 0.0f;
  const double k_sum = BlockSum(static_cast<double>(ka) * ka + static_cast<double>(kb) * kb, partial);
  const double v_sum = BlockSum(static_cast<double>(va) * va + static_cast<double>(vb) * vb, partial);
  if (!mine) return;
  const float inv_k = static_cast<float>(rsqrt(k_sum / static_cast<double>(head_dim) + eps));
  const float inv_v = static_cast<float>(rsqrt(v_sum / static_cast<double>(head_dim) + eps));
  const int64_t row = PoolRow(pages, LayerTable(pages, sequences[t]), SlotOf(pages, positions[t]));
  const int64_t base = row * kv_heads * head_dim + h * head_dim;
  float a = ka * inv_k * LoadWeight(k_weight, type, j), b = kb * inv_k * LoadWeight(k_weight, type, j + half);
  Rotate(a, b, j, head_dim, rotary, theta, positions[t]);
  Store(cache_k, cache_type, base + j, a);
  Store(cache_k, cache_type, base + j + half, b);
  Store(cache_v, cache_type, base + j, va * inv_v);
  Store(cache_v, cache_type, base + j + half, vb * inv_v);
}

// Threads for a block that owns one head's pairs: whole warps.
unsigned PairThreads(int64_t head_dim) { return static_cast<unsigned>((head_dim / 2 + kWarp - 1) / kWarp * kWarp); }

}  // namespace

cudaError_t LaunchResidualNorm(const float* branch, const void* branch_weight, const float* residual, const void* scalar,
                               const void* next_weight, WeightType type, int64_t rows, int64_t width, float eps,
                               float* x_out, float* normed, cudaStream_t stream) {
  if ((normed && !next_weight) || width > static_cast<int64_t>(kRowThreads) * kPerThread) return cudaErrorInvalidValue;
  const unsigned threads = static_cast<unsigned>(std::clamp<int64_t>((width + kPerThread * kWarp - 1) / (kPerThread * kWarp) * kWarp, kWarp, kRowThreads));
  ResidualNormKernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(branch, branch_weight, residual, scalar, next_weight,
                                                                              type, width, eps, x_out, normed);
  return cudaGetLastError();
}

cudaError_t LaunchHeadNormRope(const float* x, const void* weight, WeightType type, const int32_t* positions, int64_t tokens,
                               int64_t heads, int64_t head_dim, int64_t rotary, float theta, float eps, float* out,
                               cudaStream_t stream) {
  if (head_dim % 2 != 0 || head_dim / 2 > kRowThreads) return cudaErrorInvalidValue;
  HeadNormRopeKernel<<<static_cast<unsigned>(tokens * heads), PairThreads(head_dim), 0, stream>>>(x, weight, type, positions, heads, head_dim,
                                                                                                 rotary, theta, eps, out);
  return cudaGetLastError();
}

cudaError_t LaunchKvNormRopeAppend(const float* k, const float* v, const void* k_weight, WeightType type,
                                   const int32_t* positions, const int32_t* sequences, int64_t tokens, int64_t kv_heads,
                                   int64_t head_dim, int64_t rotary, float theta, float eps, const KvPages& pages,
                                   void* cache_k, void* cache_v, WeightType cache_type, cudaStream_t stream) {
  if (head_dim % 2 != 0 || head_dim / 2 > kRowThreads || (cache_type != WeightType::kBF16 && cache_type != WeightType::kF32)) {
    return cudaErrorInvalidValue;
  }
  if (tokens == 0) return cudaSuccess;
  KvNormRopeAppendKernel<<<static_cast<unsigned>(tokens * kv_heads), PairThreads(head_dim), 0, stream>>>(
      k, v, k_weight, type, positions, sequences, kv_heads, head_dim, rotary, theta, eps, pages, cache_k, cache_v, cache_type);
  return cudaGetLastError();
}

}  // namespace kiln::cuda
