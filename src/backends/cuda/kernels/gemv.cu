#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backends/cuda/kernels/gemv.cuh"
#include "backends/cuda/kernels/block_formats.cuh"
#include "backends/cuda/kernels/block_gemv.cuh"
#include "backends/cuda/kernels/device_math.cuh"

#include <algorithm>
#include <climits>

namespace kiln::cuda {

namespace {

// Small blocks: the rows spread evenly over the SMs (the last wave of a 3840-row matrix is short).
constexpr int kWarpsPerBlock = 4;
// 16-byte loads each lane keeps in flight per weight matrix: enough bytes outstanding per SM to
// cover HBM latency even for the narrow projections (k_proj of a one-KV-head layer has only 512
// rows). The gate/up kernel streams two matrices, so half as many each.
template <bool kGeluMul>
constexpr int kUnroll = kGeluMul ? 4 : 8;

// 16 bytes of weights expanded to floats.
template <WeightType T>
struct Chunk;
template <>
struct Chunk<WeightType::kBF16> {
  static constexpr int kCount = 8;
  __device__ static void Expand(const uint4& v, float (&f)[8]) {
    UnpackBf16Pair(v.x, f[0], f[1]);
    UnpackBf16Pair(v.y, f[2], f[3]);
    UnpackBf16Pair(v.z, f[4], f[5]);
    UnpackBf16Pair(v.w, f[6], f[7]);
  }
};
template <>
struct Chunk<WeightType::kF16> {
  static constexpr int kCount = 8;
  __device__ static void Expand(const uint4& v, float (&f)[8]) {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      __half2 h;
      memcpy(&h, &words[i], 4);
      const float2 pair = __half22float2(h);
      f[2 * i] = pair.x;
      f[2 * i + 1] = pair.y;
    }
  }
};
template <>
struct Chunk<WeightType::kF32> {
  static constexpr int kCount = 4;
  __device__ static void Expand(const uint4& v, float (&f)[4]) {
    f[0] = __uint_as_float(v.x);
    f[1] = __uint_as_float(v.y);
    f[2] = __uint_as_float(v.z);
    f[3] = __uint_as_float(v.w);
  }
};

template <WeightType T, int R>
__device__ __forceinline__ void Accumulate(const uint4& chunk, const float* __restrict__ x, int64_t k, int64_t first,
                                           float (&acc)[R]) {
  constexpr int E = Chunk<T>::kCount;
  float w[E];
  Chunk<T>::Expand(chunk, w);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float4* xs = reinterpret_cast<const float4*>(x + r * k + first);
#pragma unroll
    for (int i = 0; i < E / 4; ++i) {
      const float4 v = __ldg(xs + i);
      acc[r] += w[4 * i] * v.x + w[4 * i + 1] * v.y + w[4 * i + 2] * v.z + w[4 * i + 3] * v.w;
    }
  }
}

// The matrices one launch streams: up to kGemvMaxTargets that read the same x (q, k and v), their
// rows numbered one after another; with kGeluMul one pair (gate in w[0], up in `up`).
static_assert(kGemvMaxTargets == 3, "GemvKernel picks its target among three");
struct Targets {
  const uint4* w[kGemvMaxTargets];
  float* y[kGemvMaxTargets];
  int64_t end[kGemvMaxTargets];  // rows of targets 0..i together
  int count;
};

// One warp per weight row (per pair of rows with kGeluMul); R rows of x share each weight load.
template <WeightType T, int R, bool kGeluMul>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    GemvKernel(const float* __restrict__ x, Targets targets, const uint4* __restrict__ up, int64_t k) {
  constexpr int E = Chunk<T>::kCount;
  const int lane = threadIdx.x & 31;
  int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  // Constant indices only: a parameter array indexed at run time would be copied to local memory.
  const uint4* w = targets.w[0];
  float* __restrict__ y = targets.y[0];
  int64_t first = 0, end = targets.end[0];
  if (targets.count > 1 && row >= targets.end[0]) {
    w = targets.w[1], y = targets.y[1], first = targets.end[0], end = targets.end[1];
  }
  if (targets.count > 2 && row >= targets.end[1]) {
    w = targets.w[2], y = targets.y[2], first = targets.end[1], end = targets.end[2];
  }
  if (row >= end) return;
  const int64_t n = end - first;
  row -= first;
  const int64_t chunks = k / E;
  const uint4* a = w + row * chunks;
  const uint4* b = kGeluMul ? up + row * chunks : nullptr;
  float acc0[R], acc1[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = 0.0f;
  // U loads in flight per matrix, predicated, so short rows (k of a few hundred) keep them too.
  constexpr int U = kUnroll<kGeluMul>;
  for (int64_t c = lane; c < chunks; c += 32 * U) {
    uint4 va[U], vb[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + 32 * u;
      const bool inside = at < chunks;
      va[u] = inside ? __ldcs(a + at) : make_uint4(0, 0, 0, 0);  // weights stream through once: not kept in L1
      if constexpr (kGeluMul) vb[u] = inside ? __ldcs(b + at) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + 32 * u;
      if (at >= chunks) break;
      Accumulate<T, R>(va[u], x, k, at * E, acc0);
      if constexpr (kGeluMul) Accumulate<T, R>(vb[u], x, k, at * E, acc1);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float g = WarpSum(acc0[r]);
    if constexpr (kGeluMul) {
      const float u = WarpSum(acc1[r]);
      if (lane == 0) y[r * n + row] = GeluTanh(g) * u;
    } else {
      if (lane == 0) y[r * n + row] = g;
    }
  }
}

int ElementsPer16Bytes(WeightType type) { return type == WeightType::kF32 ? 4 : 8; }

template <WeightType T, bool kGeluMul>
cudaError_t LaunchFor(const float* x, const Targets& targets, const void* up, int64_t rows, int64_t k, cudaStream_t stream) {
  const int64_t total = targets.end[targets.count - 1];
  const dim3 grid(static_cast<unsigned>((total + kWarpsPerBlock - 1) / kWarpsPerBlock)), block(kWarpsPerBlock * 32);
  const auto* b = static_cast<const uint4*>(up);
  switch (rows) {
    case 1: GemvKernel<T, 1, kGeluMul><<<grid, block, 0, stream>>>(x, targets, b, k); break;
    case 2: GemvKernel<T, 2, kGeluMul><<<grid, block, 0, stream>>>(x, targets, b, k); break;
    case 3: GemvKernel<T, 3, kGeluMul><<<grid, block, 0, stream>>>(x, targets, b, k); break;
    case 4: GemvKernel<T, 4, kGeluMul><<<grid, block, 0, stream>>>(x, targets, b, k); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

template <bool kGeluMul>
cudaError_t Dispatch(const float* x, const Targets& targets, const void* up, WeightType type, int64_t rows, int64_t k,
                     cudaStream_t stream) {
  if (!GemvSupports(type, rows, k) || targets.count < 1 || targets.count > kGemvMaxTargets) return cudaErrorInvalidValue;
  switch (type) {
    case WeightType::kBF16: return LaunchFor<WeightType::kBF16, kGeluMul>(x, targets, up, rows, k, stream);
    case WeightType::kF16: return LaunchFor<WeightType::kF16, kGeluMul>(x, targets, up, rows, k, stream);
    case WeightType::kF32: return LaunchFor<WeightType::kF32, kGeluMul>(x, targets, up, rows, k, stream);
    default: break;  // block formats: block_gemv.cu
  }
  return cudaErrorInvalidValue;
}

// ---- MoE at decode: route on the device, then stream only the chosen experts' rows.

constexpr int kRouteThreads = 1024;
constexpr int kMoeWarps = 4;  // warps a block in the expert kernels

// Two dot products of weight rows (16-byte loads, both streams in flight together) with the
// same f32 vector x (global memory, read-only for the kernel), by one warp.
template <WeightType T, bool kTwo>
__device__ __forceinline__ float2 WarpRowDots(const uint4* a, const uint4* b, const float* __restrict__ x, int64_t k) {
  constexpr int E = Chunk<T>::kCount;
  constexpr int U = 4;
  const int lane = threadIdx.x & 31;
  const int64_t chunks = k / E;
  float acc0[1] = {0.0f}, acc1[1] = {0.0f};
  for (int64_t c = lane; c < chunks; c += 32 * U) {
    uint4 va[U], vb[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + 32 * u;
      va[u] = at < chunks ? __ldcs(a + at) : make_uint4(0, 0, 0, 0);
      if constexpr (kTwo) vb[u] = at < chunks ? __ldcs(b + at) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + 32 * u;
      if (at >= chunks) break;
      Accumulate<T, 1>(va[u], x, k, at * E, acc0);
      if constexpr (kTwo) Accumulate<T, 1>(vb[u], x, k, at * E, acc1);
    }
  }
  return make_float2(WarpSum(acc0[0]), kTwo ? WarpSum(acc1[0]) : 0.0f);
}

// One block per token: the router's norm and projection (a warp per expert, the normed input in
// shared memory), then the top-k and their weights, as the reference MoeKernel computes them.
template <WeightType T>
__global__ void __launch_bounds__(kRouteThreads)
    MoeRouteKernel(const float* __restrict__ x, const uint4* __restrict__ router, const void* router_scale,
                   const void* expert_scale, int64_t hidden, int64_t experts, int64_t top_k, float eps, MoeSlots slots) {
  extern __shared__ float shared[];  // routed[hidden], logits[experts]
  __shared__ double partial[kRouteThreads / 32];
  float* routed = shared;
  float* logits = shared + hidden;
  const int64_t t = blockIdx.x;
  const float* xt = x + t * hidden;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) sum += static_cast<double>(xt[j]) * xt[j];
  sum = WarpSum(sum);
  if (lane == 0) partial[warp] = sum;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kRouteThreads / 32; ++w) total += partial[w];
  const float inv = static_cast<float>(rsqrt(total / static_cast<double>(hidden) + eps));
  const float root = rsqrtf(static_cast<float>(hidden));
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) routed[j] = xt[j] * inv * LoadWeight(router_scale, T, j) * root;
  __syncthreads();
  constexpr int E = Chunk<T>::kCount;
  const int64_t chunks = hidden / E;
  for (int64_t e = warp; e < experts; e += kRouteThreads / 32) {
    const uint4* row = router + e * chunks;
    float acc = 0.0f;
    for (int64_t c = lane; c < chunks; c += 32) {
      float w[E];
      Chunk<T>::Expand(__ldcs(row + c), w);
#pragma unroll
      for (int i = 0; i < E; ++i) acc += w[i] * routed[c * E + i];
    }
    acc = WarpSum(acc);
    if (lane == 0) logits[e] = acc;
  }
  __syncthreads();
  if (warp != 0) return;
  // Warp 0: top-k by repeated warp-wide argmax (ties: the lowest id), then the softmax over all
  // experts renormalized over the chosen ones, in double as the reference kernel.
  int* chosen = slots.chosen + t * top_k;
  float* weights = slots.weight + t * top_k;
  float max_logit = -INFINITY;
  for (int64_t e = lane; e < experts; e += 32) max_logit = fmaxf(max_logit, logits[e]);
  for (int offset = 16; offset > 0; offset /= 2) max_logit = fmaxf(max_logit, __shfl_xor_sync(0xffffffffu, max_logit, offset));
  double all = 0.0;
  for (int64_t e = lane; e < experts; e += 32) all += exp(static_cast<double>(logits[e] - max_logit));
  all = WarpSum(all);
  double kept = 0.0;
  float chosen_value = -INFINITY;  // lane k keeps the k-th chosen logit (top_k <= 32)
  for (int64_t k = 0; k < top_k; ++k) {
    float best_value = -INFINITY;
    int best = INT_MAX;
    for (int64_t e = lane; e < experts; e += 32) {
      if (logits[e] > best_value) best_value = logits[e], best = static_cast<int>(e);  // a lane's lowest id first
    }
    for (int offset = 16; offset > 0; offset /= 2) {
      const float other_value = __shfl_xor_sync(0xffffffffu, best_value, offset);
      const int other = __shfl_xor_sync(0xffffffffu, best, offset);
      if (other_value > best_value || (other_value == best_value && other < best)) best_value = other_value, best = other;
    }
    if (lane == k) chosen_value = best_value;
    kept += exp(static_cast<double>(best_value - max_logit)) / all;
    if (lane == 0) {
      chosen[k] = best;
      logits[best] = -INFINITY;  // taken
    }
    __syncwarp();
  }
  if (lane < top_k) {
    const double probability = exp(static_cast<double>(chosen_value - max_logit)) / all;
    weights[lane] = static_cast<float>(probability / kept) * LoadWeight(expert_scale, T, chosen[lane]);
  }
}

// A warp per (chosen expert, row r < width): act = gelu(gate_r . h) * (up_r . h).
template <WeightType T>
__global__ void __launch_bounds__(kMoeWarps * 32)
    MoeGateUpKernel(const float* __restrict__ h, const uint4* __restrict__ gate_up, int64_t hidden, int64_t width,
                    int64_t top_k, MoeSlots slots) {
  const int64_t t = blockIdx.y;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kMoeWarps + (threadIdx.x >> 5);
  if (item >= top_k * width) return;
  const int64_t k = item / width, r = item % width;
  const int64_t e = slots.chosen[t * top_k + k];
  const int64_t chunks = hidden / Chunk<T>::kCount;
  const uint4* gate = gate_up + (e * 2 * width + r) * chunks;
  const uint4* up = gate_up + (e * 2 * width + width + r) * chunks;
  const float2 dots = WarpRowDots<T, true>(gate, up, h + t * hidden, hidden);
  if ((threadIdx.x & 31) == 0) slots.act[(t * top_k + k) * width + r] = GeluTanh(dots.x) * dots.y;
}

// A warp per output column j: out = sum over the chosen experts of weight * (down_j . act).
template <WeightType T>
__global__ void __launch_bounds__(kMoeWarps * 32)
    MoeDownKernel(const uint4* __restrict__ down, int64_t hidden, int64_t width, int64_t top_k, MoeSlots slots,
                  float* __restrict__ out) {
  const int64_t t = blockIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kMoeWarps + (threadIdx.x >> 5);
  if (j >= hidden) return;
  const int64_t chunks = width / Chunk<T>::kCount;
  float sum = 0.0f;
  for (int64_t k = 0; k < top_k; ++k) {
    const int64_t e = slots.chosen[t * top_k + k];
    const float2 dot = WarpRowDots<T, false>(down + (e * hidden + j) * chunks, nullptr, slots.act + (t * top_k + k) * width, width);
    sum += slots.weight[t * top_k + k] * dot.x;
  }
  if ((threadIdx.x & 31) == 0) out[t * hidden + j] = sum;
}

template <WeightType T>
cudaError_t LaunchMoeFor(const float* x, const float* h, const void* router, const void* router_scale, const void* expert_scale,
                         const void* gate_up, const void* down, WeightType expert_type, int64_t tokens, int64_t hidden, int64_t experts,
                         int64_t width, int64_t top_k, float eps, const MoeSlots& slots, float* out, cudaStream_t stream) {
  const size_t shared = static_cast<size_t>(hidden + experts) * sizeof(float);
  auto route = MoeRouteKernel<T>;
  if (shared > 48 * 1024) {
    if (cudaError_t s = cudaFuncSetAttribute(route, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)); s != cudaSuccess) return s;
  }
  route<<<static_cast<unsigned>(tokens), kRouteThreads, shared, stream>>>(x, static_cast<const uint4*>(router), router_scale, expert_scale,
                                                                         hidden, experts, top_k, eps, slots);
  if (IsBlockWeight(expert_type)) {
    return LaunchBlockMoeExperts(h, gate_up, down, expert_type, tokens, hidden, experts, width, top_k, slots, out, stream);
  }
  const dim3 gate_grid(static_cast<unsigned>((top_k * width + kMoeWarps - 1) / kMoeWarps), static_cast<unsigned>(tokens));
  MoeGateUpKernel<T><<<gate_grid, kMoeWarps * 32, 0, stream>>>(h, static_cast<const uint4*>(gate_up), hidden, width, top_k, slots);
  const dim3 down_grid(static_cast<unsigned>((hidden + kMoeWarps - 1) / kMoeWarps), static_cast<unsigned>(tokens));
  MoeDownKernel<T><<<down_grid, kMoeWarps * 32, 0, stream>>>(static_cast<const uint4*>(down), hidden, width, top_k, slots, out);
  return cudaGetLastError();
}

Targets One(const void* w, float* y, int64_t n) {
  Targets targets{};
  targets.w[0] = static_cast<const uint4*>(w);
  targets.y[0] = y;
  targets.end[0] = n;
  targets.count = 1;
  return targets;
}

}  // namespace

bool GemvSupports(WeightType type, int64_t rows, int64_t k) {
  if (IsBlockWeight(type)) return BlockGemvSupports(type, rows, k);
  return rows >= 1 && rows <= kGemvMaxRows && k > 0 && k % ElementsPer16Bytes(type) == 0;
}

cudaError_t LaunchGemv(const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y,
                       cudaStream_t stream) {
  if (IsBlockWeight(type)) return LaunchBlockGemv(x, &w, &y, &n, 1, nullptr, type, rows, k, stream);
  return Dispatch<false>(x, One(w, y, n), nullptr, type, rows, k, stream);
}

cudaError_t LaunchGemvMulti(const float* x, const void* const* w, float* const* y, const int64_t* n, int count,
                            WeightType type, int64_t rows, int64_t k, cudaStream_t stream) {
  if (count < 1 || count > kGemvMaxTargets) return cudaErrorInvalidValue;
  if (IsBlockWeight(type)) return LaunchBlockGemv(x, w, y, n, count, nullptr, type, rows, k, stream);
  Targets targets{};
  int64_t end = 0;
  for (int i = 0; i < count; ++i) {
    targets.w[i] = static_cast<const uint4*>(w[i]);
    targets.y[i] = y[i];
    targets.end[i] = end += n[i];
  }
  targets.count = count;
  return Dispatch<false>(x, targets, nullptr, type, rows, k, stream);
}

cudaError_t LaunchGemvGeluMul(const float* x, const void* w_gate, const void* w_up, WeightType type, int64_t rows,
                              int64_t n, int64_t k, float* y, cudaStream_t stream) {
  if (IsBlockWeight(type)) return LaunchBlockGemv(x, &w_gate, &y, &n, 1, w_up, type, rows, k, stream);
  return Dispatch<true>(x, One(w_gate, y, n), w_up, type, rows, k, stream);
}

bool MoeDecodeSupports(WeightType router_type, WeightType expert_type, int64_t tokens, int64_t hidden, int64_t experts, int64_t width,
                       int64_t top_k) {
  if (IsBlockWeight(router_type)) return false;
  const int64_t e = ElementsPer16Bytes(router_type);
  const bool shapes = hidden % e == 0 && top_k >= 1 && top_k <= experts && top_k <= 32 && (hidden + experts) * 4 <= 160 * 1024;
  if (IsBlockWeight(expert_type)) {
    // Any token count: LaunchMoeDecode runs them kGemvMaxRows at a time through the same scratch.
    const int64_t block = BlockShapeOf(expert_type).elements;
    return shapes && tokens >= 1 && hidden % block == 0 && width % block == 0;
  }
  return shapes && expert_type == router_type && tokens >= 1 && tokens <= kGemvMaxRows && width % e == 0;
}

int64_t MoeDecodeScratchBytes(int64_t tokens, int64_t width, int64_t top_k) {
  return std::min<int64_t>(tokens, kGemvMaxRows) * top_k * (width + 2) * 4 + 256;
}

cudaError_t LaunchMoeDecode(const float* x, const float* h, const void* router, const void* router_scale,
                            const void* expert_scale, const void* gate_up, const void* down, WeightType router_type,
                            WeightType expert_type, int64_t tokens, int64_t hidden, int64_t experts, int64_t width, int64_t top_k,
                            float eps, void* scratch, float* out, cudaStream_t stream) {
  if (!MoeDecodeSupports(router_type, expert_type, tokens, hidden, experts, width, top_k)) return cudaErrorInvalidValue;
  for (int64_t first = 0; first < tokens; first += kGemvMaxRows) {
    const int64_t count = std::min(kGemvMaxRows, tokens - first);
    // Scratch: act [count, top_k, width] f32, then weights and chosen ids [count, top_k]; the
    // chunks of a long step reuse it one after another on the stream.
    MoeSlots slots;
    slots.act = static_cast<float*>(scratch);
    slots.weight = slots.act + count * top_k * width;
    slots.chosen = reinterpret_cast<int*>(slots.weight + count * top_k);
    const float* xc = x + first * hidden;
    const float* hc = h + first * hidden;
    float* oc = out + first * hidden;
    cudaError_t s = cudaErrorInvalidValue;
    switch (router_type) {
      case WeightType::kBF16: s = LaunchMoeFor<WeightType::kBF16>(xc, hc, router, router_scale, expert_scale, gate_up, down, expert_type, count, hidden, experts, width, top_k, eps, slots, oc, stream); break;
      case WeightType::kF16: s = LaunchMoeFor<WeightType::kF16>(xc, hc, router, router_scale, expert_scale, gate_up, down, expert_type, count, hidden, experts, width, top_k, eps, slots, oc, stream); break;
      case WeightType::kF32: s = LaunchMoeFor<WeightType::kF32>(xc, hc, router, router_scale, expert_scale, gate_up, down, expert_type, count, hidden, experts, width, top_k, eps, slots, oc, stream); break;
      default: break;
    }
    if (s != cudaSuccess) return s;
  }
  return cudaSuccess;
}

}  // namespace kiln::cuda
