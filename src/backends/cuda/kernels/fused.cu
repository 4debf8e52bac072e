#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backends/cuda/kernels/fused.cuh"

namespace kiln::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kRowThreads = 256;

__device__ __forceinline__ float LoadWeight(const void* w, WeightType type, int64_t i) {
  switch (type) {
    case WeightType::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(w)[i]);
    case WeightType::kF16: return __half2float(static_cast<const __half*>(w)[i]);
    default: return static_cast<const float*>(w)[i];
  }
}

// Sums of squares in double, as the unfused RmsNorm kernel, so fusing changes no result bits
// beyond summation order.
__device__ __forceinline__ double WarpSum(double v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ double BlockSum(double v, double* shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = WarpSum(v);
  __syncthreads();  // `shared` may still be read from a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kRowThreads / kWarp; ++w) total += shared[w];
  return total;
}

__global__ void __launch_bounds__(kRowThreads)
    ResidualNormKernel(const float* branch, const void* branch_weight, const float* residual, const void* scalar,
                       const void* next_weight, WeightType type, int64_t width, float eps, float* x_out, float* normed) {
  __shared__ double partial[kRowThreads / kWarp];
  const int64_t row = blockIdx.x;
  const float* y = branch + row * width;
  const float* x = residual + row * width;
  float* out = x_out + row * width;
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) sum += static_cast<double>(y[j]) * y[j];
  const float inv_branch = static_cast<float>(rsqrt(BlockSum(sum, partial) / static_cast<double>(width) + eps));
  const float s = scalar ? LoadWeight(scalar, type, 0) : 1.0f;
  sum = 0.0;
  // Each thread rereads only the elements it wrote, so no barrier is needed between the passes.
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    const float added = x[j] + y[j] * inv_branch * LoadWeight(branch_weight, type, j);
    const float value = scalar ? added * s : added;
    out[j] = value;
    sum += static_cast<double>(value) * value;
  }
  if (!normed) return;
  const float inv_next = static_cast<float>(rsqrt(BlockSum(sum, partial) / static_cast<double>(width) + eps));
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) normed[row * width + j] = out[j] * inv_next * LoadWeight(next_weight, type, j);
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

// One warp per (token, head).
__device__ __forceinline__ float HeadInverseRms(const float* head, int64_t head_dim, float eps) {
  const int lane = threadIdx.x % kWarp;
  double sum = 0.0;
  for (int64_t j = lane; j < head_dim; j += kWarp) sum += static_cast<double>(head[j]) * head[j];
  return static_cast<float>(rsqrt(WarpSum(sum) / static_cast<double>(head_dim) + eps));
}

__global__ void HeadNormRopeKernel(const float* x, const void* weight, WeightType type, const int32_t* positions, int64_t tokens,
                                   int64_t heads, int64_t head_dim, int64_t rotary, float theta, float eps, float* out) {
  const int64_t job = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (job >= tokens * heads) return;
  const int64_t t = job / heads;
  const float* head = x + job * head_dim;
  float* target = out + job * head_dim;
  const float inv = HeadInverseRms(head, head_dim, eps);
  const int64_t half = head_dim / 2;
  for (int64_t j = lane; j < half; j += kWarp) {
    float a = head[j] * inv * LoadWeight(weight, type, j);
    float b = head[j + half] * inv * LoadWeight(weight, type, j + half);
    Rotate(a, b, j, head_dim, rotary, theta, positions[t]);
    target[j] = a;
    target[j + half] = b;
  }
}

__device__ __forceinline__ void Store(void* cache, WeightType type, int64_t i, float v) {
  if (type == WeightType::kBF16) {
    static_cast<__nv_bfloat16*>(cache)[i] = __float2bfloat16(v);
  } else {
    static_cast<float*>(cache)[i] = v;
  }
}

// One warp per (token, kv head).
__global__ void KvNormRopeAppendKernel(const float* k, const float* v, const void* k_weight, WeightType type, const int32_t* positions,
                                       int64_t tokens, int64_t kv_heads, int64_t head_dim, int64_t rotary, float theta, float eps,
                                       int64_t capacity, bool ring, void* cache_k, void* cache_v, WeightType cache_type) {
  const int64_t job = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (job >= tokens * kv_heads) return;
  const int64_t t = job / kv_heads, h = job % kv_heads;
  const int64_t width = kv_heads * head_dim;
  const int64_t slot = ring ? positions[t] % capacity : positions[t];
  const int64_t base = slot * width + h * head_dim;
  const float* key = k + job * head_dim;
  const float* value = v + job * head_dim;
  const float inv_k = HeadInverseRms(key, head_dim, eps);
  const float inv_v = HeadInverseRms(value, head_dim, eps);
  const int64_t half = head_dim / 2;
  for (int64_t j = lane; j < half; j += kWarp) {
    float a = key[j] * inv_k * LoadWeight(k_weight, type, j);
    float b = key[j + half] * inv_k * LoadWeight(k_weight, type, j + half);
    Rotate(a, b, j, head_dim, rotary, theta, positions[t]);
    Store(cache_k, cache_type, base + j, a);
    Store(cache_k, cache_type, base + j + half, b);
  }
  for (int64_t j = lane; j < head_dim; j += kWarp) Store(cache_v, cache_type, base + j, value[j] * inv_v);
}

int WarpBlocks(int64_t jobs) { return static_cast<int>((jobs * kWarp + 255) / 256); }

}  // namespace

cudaError_t LaunchResidualNorm(const float* branch, const void* branch_weight, const float* residual, const void* scalar,
                               const void* next_weight, WeightType type, int64_t rows, int64_t width, float eps,
                               float* x_out, float* normed, cudaStream_t stream) {
  if (normed && !next_weight) return cudaErrorInvalidValue;
  ResidualNormKernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(branch, branch_weight, residual, scalar, next_weight,
                                                                              type, width, eps, x_out, normed);
  return cudaGetLastError();
}

cudaError_t LaunchHeadNormRope(const float* x, const void* weight, WeightType type, const int32_t* positions, int64_t tokens,
                               int64_t heads, int64_t head_dim, int64_t rotary, float theta, float eps, float* out,
                               cudaStream_t stream) {
  if (head_dim % 2 != 0) return cudaErrorInvalidValue;
  HeadNormRopeKernel<<<WarpBlocks(tokens * heads), 256, 0, stream>>>(x, weight, type, positions, tokens, heads, head_dim, rotary, theta,
                                                                      eps, out);
  return cudaGetLastError();
}

cudaError_t LaunchKvNormRopeAppend(const float* k, const float* v, const void* k_weight, WeightType type,
                                   const int32_t* positions, int64_t tokens, int64_t kv_heads, int64_t head_dim,
                                   int64_t rotary, float theta, float eps, int64_t capacity, bool ring, void* cache_k,
                                   void* cache_v, WeightType cache_type, cudaStream_t stream) {
  if (head_dim % 2 != 0 || (cache_type != WeightType::kBF16 && cache_type != WeightType::kF32)) return cudaErrorInvalidValue;
  KvNormRopeAppendKernel<<<WarpBlocks(tokens * kv_heads), 256, 0, stream>>>(k, v, k_weight, type, positions, tokens, kv_heads, head_dim,
                                                                            rotary, theta, eps, capacity, ring, cache_k, cache_v, cache_type);
  return cudaGetLastError();
}

}  // namespace kiln::cuda
