#include "backends/cuda/kernels/block_gemv.cuh"

#include "backends/cuda/kernels/block_formats.cuh"
#include "backends/cuda/kernels/device_math.cuh"

namespace kiln::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kWeightRowsPerWarp = 2;

// S weight rows (stream s: row row[s] of matrix m[s]) dotted with R rows of x (row r at x + r *
// x_stride) by one warp: acc[s][r] gets this lane's share. Units are strided over the lanes, U of
// them per stream loaded before any is used, so every lane keeps U * S 16-byte loads in flight.
template <WeightType F, int R, int S>
__device__ __forceinline__ void WarpBlockDots(const BlockMatrix (&m)[S], const int64_t (&row)[S], const float* __restrict__ x,
                                              int64_t x_stride, int64_t k, float (&acc)[S][R]) {
  using Format = BlockFormat<F>;
  // More x rows mean more registers and more arithmetic per byte: fewer loads in flight suffice.
  constexpr int U = (S >= 4 || R > 4) ? 1 : S == 2 ? 2 : 4;
  const int lane = threadIdx.x & 31;
  const int64_t units = k / Format::kUnitElements;
  for (int64_t c = lane; c < units; c += 32 * U) {
    typename Format::Unit unit[U][S];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + 32 * u;
#pragma unroll
      for (int s = 0; s < S; ++s) unit[u][s] = at < units ? Format::Load(m[s], row[s], at) : typename Format::Unit{};
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + 32 * u;
      if (at >= units) break;
#pragma unroll
      for (int group = 0; group < Format::kGroups; ++group) {
        BlockGroup w[S];
#pragma unroll
        for (int s = 0; s < S; ++s) {
          Format::Expand(unit[u][s], at, group, w[s]);
          if constexpr (Format::kOffset) {
            // Q4_K: the minimum does not factor out of the sum; dequantize each element.
#pragma unroll
            for (int j = 0; j < 16; ++j) w[s].v[j] = fmaf(w[s].v[j], w[s].scale, -w[s].offset);
          }
        }
        const int64_t offset = Format::Offset(at, group);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float4* xs = reinterpret_cast<const float4*>(x + r * x_stride + offset);
          float4 xv[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) xv[i] = __ldg(xs + i);
#pragma unroll
          for (int s = 0; s < S; ++s) {
            float partial = 0.0f;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              partial = fmaf(w[s].v[4 * i], xv[i].x, partial);
              partial = fmaf(w[s].v[4 * i + 1], xv[i].y, partial);
              partial = fmaf(w[s].v[4 * i + 2], xv[i].z, partial);
              partial = fmaf(w[s].v[4 * i + 3], xv[i].w, partial);
            }
            acc[s][r] = Format::kOffset ? acc[s][r] + partial : fmaf(w[s].scale, partial, acc[s][r]);
          }
        }
      }
    }
  }
}

// The matrices a launch streams (as Targets in gemv.cu): their pairs of rows numbered one after
// another over the targets.
struct BlockTargets {
  const void* w[kGemvMaxTargets];
  float* y[kGemvMaxTargets];
  int64_t n[kGemvMaxTargets];
  int64_t end[kGemvMaxTargets];  // row pairs of targets 0..i together
  int count;
};

// One warp per pair of weight rows (and, with kGeluMul, the same pair of `up`).
template <WeightType F, int R, bool kGeluMul>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    BlockGemvKernel(const float* __restrict__ x, BlockTargets targets, const void* up, int64_t k) {
  const int lane = threadIdx.x & 31;
  int64_t item = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  // Constant indices only: a parameter array indexed at run time would be copied to local memory.
  const void* w = targets.w[0];
  float* __restrict__ y = targets.y[0];
  int64_t n = targets.n[0], first = 0, end = targets.end[0];
  if (targets.count > 1 && item >= targets.end[0]) {
    w = targets.w[1], y = targets.y[1], n = targets.n[1], first = targets.end[0], end = targets.end[1];
  }
  if (targets.count > 2 && item >= targets.end[1]) {
    w = targets.w[2], y = targets.y[2], n = targets.n[2], first = targets.end[1], end = targets.end[2];
  }
  if (item >= end) return;
  const int64_t row0 = (item - first) * kWeightRowsPerWarp;
  const bool second = row0 + 1 < n;
  const int64_t row1 = second ? row0 + 1 : row0;  // an odd last row: the warp reads it twice, writes it once
  const BlockMatrix a = MakeBlockMatrix(F, w, n, k);
  if constexpr (kGeluMul) {
    const BlockMatrix b = MakeBlockMatrix(F, up, n, k);
    const BlockMatrix m[4] = {a, a, b, b};
    const int64_t rows[4] = {row0, row1, row0, row1};
    float acc[4][R] = {};
    WarpBlockDots<F, R, 4>(m, rows, x, k, k, acc);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float g0 = WarpSum(acc[0][r]), g1 = WarpSum(acc[1][r]), u0 = WarpSum(acc[2][r]), u1 = WarpSum(acc[3][r]);
      if (lane == 0) {
        y[r * n + row0] = GeluTanh(g0) * u0;
        if (second) y[r * n + row1] = GeluTanh(g1) * u1;
      }
    }
  } else {
    const BlockMatrix m[2] = {a, a};
    const int64_t rows[2] = {row0, row1};
    float acc[2][R] = {};
    WarpBlockDots<F, R, 2>(m, rows, x, k, k, acc);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float s0 = WarpSum(acc[0][r]), s1 = WarpSum(acc[1][r]);
      if (lane == 0) {
        y[r * n + row0] = s0;
        if (second) y[r * n + row1] = s1;
      }
    }
  }
}

template <WeightType F, bool kGeluMul>
cudaError_t LaunchFor(const float* x, const BlockTargets& targets, const void* up, int64_t rows, int64_t k, cudaStream_t stream) {
  const int64_t items = targets.end[targets.count - 1];
  const dim3 grid(static_cast<unsigned>((items + kWarpsPerBlock - 1) / kWarpsPerBlock)), block(kWarpsPerBlock * 32);
  switch (rows) {
    case 1: BlockGemvKernel<F, 1, kGeluMul><<<grid, block, 0, stream>>>(x, targets, up, k); break;
    case 2: BlockGemvKernel<F, 2, kGeluMul><<<grid, block, 0, stream>>>(x, targets, up, k); break;
    case 3: BlockGemvKernel<F, 3, kGeluMul><<<grid, block, 0, stream>>>(x, targets, up, k); break;
    case 4: BlockGemvKernel<F, 4, kGeluMul><<<grid, block, 0, stream>>>(x, targets, up, k); break;
    case 5: BlockGemvKernel<F, 5, kGeluMul><<<grid, block, 0, stream>>>(x, targets, up, k); break;
    case 6: BlockGemvKernel<F, 6, kGeluMul><<<grid, block, 0, stream>>>(x, targets, up, k); break;
    case 7: BlockGemvKernel<F, 7, kGeluMul><<<grid, block, 0, stream>>>(x, targets, up, k); break;
    case 8: BlockGemvKernel<F, 8, kGeluMul><<<grid, block, 0, stream>>>(x, targets, up, k); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

// ---- MoE experts at decode.

// A warp per (chosen expert, row r < width): act = gelu(gate_r . h) * (up_r . h).
template <WeightType F>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    BlockMoeGateUpKernel(const float* __restrict__ h, const void* gate_up, int64_t experts, int64_t hidden, int64_t width, int64_t top_k,
                         MoeSlots slots) {
  const int64_t t = blockIdx.y;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (item >= top_k * width) return;
  const int64_t i = item / width, r = item % width;
  const int64_t e = slots.chosen[t * top_k + i];
  const BlockMatrix matrix = MakeBlockMatrix(F, gate_up, experts * 2 * width, hidden);
  const BlockMatrix m[2] = {matrix, matrix};
  const int64_t rows[2] = {e * 2 * width + r, e * 2 * width + width + r};
  float acc[2][1] = {};
  WarpBlockDots<F, 1, 2>(m, rows, h + t * hidden, hidden, hidden, acc);
  const float gate = WarpSum(acc[0][0]), up = WarpSum(acc[1][0]);
  if ((threadIdx.x & 31) == 0) slots.act[(t * top_k + i) * width + r] = GeluTanh(gate) * up;
}

// A warp per output column j: out = sum over the chosen experts of weight * (down_j . act).
template <WeightType F>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    BlockMoeDownKernel(const void* down, int64_t experts, int64_t hidden, int64_t width, int64_t top_k, MoeSlots slots,
                       float* __restrict__ out) {
  const int64_t t = blockIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (j >= hidden) return;
  const BlockMatrix m[1] = {MakeBlockMatrix(F, down, experts * hidden, width)};
  float sum = 0.0f;
  for (int64_t i = 0; i < top_k; ++i) {
    const int64_t rows[1] = {slots.chosen[t * top_k + i] * hidden + j};
    float acc[1][1] = {};
    WarpBlockDots<F, 1, 1>(m, rows, slots.act + (t * top_k + i) * width, width, width, acc);
    sum += slots.weight[t * top_k + i] * WarpSum(acc[0][0]);
  }
  if ((threadIdx.x & 31) == 0) out[t * hidden + j] = sum;
}

}  // namespace

bool BlockGemvSupports(WeightType type, int64_t rows, int64_t k) {
  return IsBlockWeight(type) && rows >= 1 && rows <= kBlockGemvMaxRows && k > 0 && k % BlockShapeOf(type).elements == 0;
}

cudaError_t LaunchBlockGemv(const float* x, const void* const* w, float* const* y, const int64_t* n, int count, const void* up,
                            WeightType type, int64_t rows, int64_t k, cudaStream_t stream) {
  if (!BlockGemvSupports(type, rows, k) || count < 1 || count > kGemvMaxTargets || (up && count != 1)) return cudaErrorInvalidValue;
  BlockTargets targets{};
  int64_t end = 0;
  for (int i = 0; i < count; ++i) {
    targets.w[i] = w[i];
    targets.y[i] = y[i];
    targets.n[i] = n[i];
    targets.end[i] = end += (n[i] + kWeightRowsPerWarp - 1) / kWeightRowsPerWarp;
  }
  targets.count = count;
  if (end == 0) return cudaSuccess;
  return WithBlockFormat(type, [&](auto format) {
    constexpr WeightType F = decltype(format)::value;
    return up ? LaunchFor<F, true>(x, targets, up, rows, k, stream) : LaunchFor<F, false>(x, targets, nullptr, rows, k, stream);
  });
}

cudaError_t LaunchBlockMoeExperts(const float* h, const void* gate_up, const void* down, WeightType type, int64_t tokens, int64_t hidden,
                                  int64_t experts, int64_t width, int64_t top_k, const MoeSlots& slots, float* out, cudaStream_t stream) {
  if (!IsBlockWeight(type) || hidden % BlockShapeOf(type).elements != 0 || width % BlockShapeOf(type).elements != 0) {
    return cudaErrorInvalidValue;
  }
  return WithBlockFormat(type, [&](auto format) {
    constexpr WeightType F = decltype(format)::value;
    const dim3 gate_grid(static_cast<unsigned>((top_k * width + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(tokens));
    BlockMoeGateUpKernel<F><<<gate_grid, kWarpsPerBlock * 32, 0, stream>>>(h, gate_up, experts, hidden, width, top_k, slots);
    const dim3 down_grid(static_cast<unsigned>((hidden + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(tokens));
    BlockMoeDownKernel<F><<<down_grid, kWarpsPerBlock * 32, 0, stream>>>(down, experts, hidden, width, top_k, slots, out);
    return cudaGetLastError();
  });
}

}  // namespace kiln::cuda
