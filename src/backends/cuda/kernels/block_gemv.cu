#include "backends/cuda/kernels/block_gemv.cuh"

#include "backends/cuda/kernels/block_formats.cuh"
#include "backends/cuda/kernels/block_gemv_targets.cuh"
#include "backends/cuda/kernels/device_math.cuh"

namespace kiln::cuda {

namespace {

// The x rows a warp multiplies with, read 16 bytes at a time: x[r, offset + 4i .. + 4).
struct GlobalX {
  const float* x;
  int64_t stride;
  __device__ float4 Load(int r, int64_t offset, int i) const { return __ldg(reinterpret_cast<const float4*>(x + r * stride + offset) + i); }
};

// A tile of the x rows staged in shared memory: elements [start, start + width) of each row, with
// 4 floats of padding after every 32 elements. A lane reads the 16 elements of its unit's group;
// the lanes of a quarter warp read groups 32 or 16 elements apart, which the padding spreads over
// all 32 banks (without it, elements 32 apart share a bank and the reads serialize).
__host__ __device__ constexpr int64_t PaddedIndex(int64_t element) { return element + 4 * (element >> 5); }

struct SharedX {
  const float* xs;
  int64_t stride;  // floats per staged row
  int64_t start;
  __device__ float4 Load(int r, int64_t offset, int i) const {
    return reinterpret_cast<const float4*>(xs + r * stride + PaddedIndex(offset - start))[i];
  }
};

// S weight rows (stream s: row row[s] of matrix m[s]) dotted with R rows of x over the units
// [unit_begin, unit_end) of a row, by `lanes` lanes (a warp, or the warps of a block that share
// the rows), this one being lane `lane`: acc[s][r] gets its share. Units are strided over the
// lanes, U of them per stream loaded before any is used, so every lane keeps U * S 16-byte loads
// in flight. Each 16-element group of x is loaded once for all S streams.
template <WeightType F, int R, int S, typename X>
__device__ __forceinline__ void BlockDots(const BlockMatrix (&m)[S], const int64_t (&row)[S], const X& x, int64_t unit_begin,
                                          int64_t unit_end, int lane, int lanes, float (&acc)[S][R]) {
  using Format = BlockFormat<F>;
  // More x rows and streams mean more registers and more arithmetic per byte: fewer loads in
  // flight suffice. Units of more than 16 bytes and a scale (the K-quants) take one at a time at 4
  // streams, or their registers would cut the warps an SM holds.
  constexpr bool kLargeUnit = sizeof(typename Format::Unit) > 20;
  constexpr int U = (S >= 4 && (R > 2 || kLargeUnit)) || R > 4 ? 1 : S == 1 ? 4 : 2;
  for (int64_t c = unit_begin + lane; c < unit_end; c += static_cast<int64_t>(lanes) * U) {
    typename Format::Unit unit[U][S];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + static_cast<int64_t>(lanes) * u;
#pragma unroll
      for (int s = 0; s < S; ++s) unit[u][s] = at < unit_end ? Format::Load(m[s], row[s], at) : typename Format::Unit{};
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + static_cast<int64_t>(lanes) * u;
      if (at >= unit_end) break;
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
          float4 xv[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) xv[i] = x.Load(r, offset, i);
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

// ---- The linear.
//
// A thread block takes consecutive output rows of one target, P rows a warp (streams S = P, or,
// with kGeluMul, S = 2P: the gate rows and the same rows of `up`), in one of two ways:
//   - staged x (kStaged): 8 warps stage x in shared memory a tile of columns at a time and run over
//     the tile's units of their rows, 4 rows a warp (2 beyond 4 x rows or with kGeluMul). A lane's
//     16-byte unit of Q4_0 covers 32 elements, 128 bytes of f32 x: read through L1 at 32 lanes'
//     strided addresses those reads cost more than the weights' own loads (the L1 was the limit),
//     from shared memory they are conflict-free and shared by 4 rows.
//   - x through L1: 4 warps, 2 rows a warp, no barriers and more warps an SM. Faster for a single
//     x row where a unit holds 16 elements (Q8_0, F8) or carries 16 bytes of scales (the K-quants),
//     as measured with kiln_cuda_bench --gemv (bench/RESULTS.md).

// Columns of x a staged tile holds (a multiple of every block format's 256-element super-block,
// so no unit straddles two tiles): 18 KB of shared memory up to 4 rows, 36 KB at 8.
template <int R>
__host__ __device__ constexpr int64_t TileElements() {
  return R == 1 ? 4096 : R == 2 ? 2048 : 1024;
}

template <bool kStaged>
__host__ __device__ constexpr int GemvWarps() {
  return kStaged ? 8 : 4;
}

// Output rows a warp takes: every x row's accumulators per stream cost registers.
template <int R, bool kGeluMul, bool kStaged>
__host__ __device__ constexpr int RowsPerWarp() {
  return kStaged && !kGeluMul && R <= 4 ? 4 : 2;
}

constexpr bool StagesX(WeightType type, int64_t rows) {
  return rows > 1 || type == WeightType::kQ4_0 || type == WeightType::kQ4_1 || type == WeightType::kQ5_0 || type == WeightType::kQ5_1;
}

template <WeightType F, int R, bool kGeluMul, bool kStaged>
__global__ void __launch_bounds__(GemvWarps<kStaged>() * 32)
    BlockGemvKernel(const float* __restrict__ x, BlockTargets targets, const void* up, int64_t k) {
  constexpr int kWarps = GemvWarps<kStaged>(), P = RowsPerWarp<R, kGeluMul, kStaged>(), S = kGeluMul ? 2 * P : P;
  constexpr int kUnit = BlockFormat<F>::kUnitElements;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t block = blockIdx.x;
  const BlockTarget target = TargetOf(targets, block);
  const void* w = target.w;
  float* __restrict__ y = target.y;
  const int64_t n = target.n;
  const int64_t base = ((block - target.first) * kWarps + warp) * P;
  const bool active = base < n;  // a warp past the last row still stages x and meets the barriers
  BlockMatrix m[S];
  int64_t rows[S];
  const BlockMatrix a = MakeBlockMatrix(F, w, n, k);
#pragma unroll
  for (int p = 0; p < P; ++p) {
    m[p] = a;
    rows[p] = base + p < n ? base + p : n - 1;  // rows past the end read the last row, are not written
  }
  if constexpr (kGeluMul) {
    const BlockMatrix b = MakeBlockMatrix(F, up, n, k);
#pragma unroll
    for (int p = 0; p < P; ++p) m[P + p] = b, rows[P + p] = rows[p];
  }
  float acc[S][R] = {};
  if constexpr (kStaged) {
    constexpr int64_t kTile = TileElements<R>(), kStride = PaddedIndex(kTile);
    __shared__ __align__(16) float xs[R * kStride];
    for (int64_t start = 0; start < k; start += kTile) {
      const int64_t width = k - start < kTile ? k - start : kTile, quads = width / 4;
      __syncthreads();  // the previous tile's reads are done
      for (int64_t i = threadIdx.x; i < R * quads; i += kWarps * 32) {
        const int64_t r = i / quads, e = 4 * (i % quads);
        *reinterpret_cast<float4*>(xs + r * kStride + PaddedIndex(e)) = __ldg(reinterpret_cast<const float4*>(x + r * k + start + e));
      }
      __syncthreads();
      if (active) BlockDots<F, R, S>(m, rows, SharedX{xs, kStride, start}, start / kUnit, (start + width) / kUnit, lane, 32, acc);
    }
  } else if (active) {
    BlockDots<F, R, S>(m, rows, GlobalX{x, k}, 0, k / kUnit, lane, 32, acc);
  }
  if (active) StoreWarpRows<P, S, R, kGeluMul>(acc, lane, y, n, base);
}

template <WeightType F, bool kGeluMul>
cudaError_t LaunchFor(const float* x, const void* const* w, float* const* y, const int64_t* n, int count, const void* up, int64_t rows,
                      int64_t k, cudaStream_t stream) {
  auto launch = [&](auto rows_constant, auto staged_constant) {
    constexpr int R = decltype(rows_constant)::value;
    constexpr bool kStaged = decltype(staged_constant)::value;
    constexpr int64_t kBlockRows = GemvWarps<kStaged>() * RowsPerWarp<R, kGeluMul, kStaged>();
    const BlockTargets targets = MakeBlockTargets(w, y, n, count, kBlockRows);
    if (targets.blocks() == 0) return cudaSuccess;
    BlockGemvKernel<F, R, kGeluMul, kStaged><<<static_cast<unsigned>(targets.blocks()), GemvWarps<kStaged>() * 32, 0, stream>>>(x, targets, up, k);
    return cudaGetLastError();
  };
  using Staged = std::true_type;
  switch (rows) {
    case 1:
      if constexpr (StagesX(F, 1)) return launch(std::integral_constant<int, 1>{}, Staged{});
      else return launch(std::integral_constant<int, 1>{}, std::false_type{});
    case 2: return launch(std::integral_constant<int, 2>{}, Staged{});
    case 3: return launch(std::integral_constant<int, 3>{}, Staged{});
    case 4: return launch(std::integral_constant<int, 4>{}, Staged{});
    case 5: return launch(std::integral_constant<int, 5>{}, Staged{});
    case 6: return launch(std::integral_constant<int, 6>{}, Staged{});
    case 7: return launch(std::integral_constant<int, 7>{}, Staged{});
    case 8: return launch(std::integral_constant<int, 8>{}, Staged{});
    default: return cudaErrorInvalidValue;
  }
}

// ---- MoE experts at decode.

constexpr int kMoeWarps = 4;

// A warp per (chosen expert, row r < width): act = gelu(gate_r . h) * (up_r . h).
template <WeightType F>
__global__ void __launch_bounds__(kMoeWarps * 32)
    BlockMoeGateUpKernel(const float* __restrict__ h, const void* gate_up, int64_t experts, int64_t hidden, int64_t width, int64_t top_k,
                         MoeSlots slots) {
  const int64_t t = blockIdx.y;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kMoeWarps + (threadIdx.x >> 5);
  if (item >= top_k * width) return;
  const int64_t i = item / width, r = item % width;
  const int64_t e = slots.chosen[t * top_k + i];
  const BlockMatrix matrix = MakeBlockMatrix(F, gate_up, experts * 2 * width, hidden);
  const BlockMatrix m[2] = {matrix, matrix};
  const int64_t rows[2] = {e * 2 * width + r, e * 2 * width + width + r};
  float acc[2][1] = {};
  BlockDots<F, 1, 2>(m, rows, GlobalX{h + t * hidden, hidden}, 0, hidden / BlockFormat<F>::kUnitElements, threadIdx.x & 31, 32, acc);
  const float gate = WarpSum(acc[0][0]), up = WarpSum(acc[1][0]);
  if ((threadIdx.x & 31) == 0) slots.act[(t * top_k + i) * width + r] = GeluTanh(gate) * up;
}

// A warp per output column j: out = sum over the chosen experts of weight * (down_j . act).
template <WeightType F>
__global__ void __launch_bounds__(kMoeWarps * 32)
    BlockMoeDownKernel(const void* down, int64_t experts, int64_t hidden, int64_t width, int64_t top_k, MoeSlots slots,
                       float* __restrict__ out) {
  const int64_t t = blockIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kMoeWarps + (threadIdx.x >> 5);
  if (j >= hidden) return;
  const BlockMatrix m[1] = {MakeBlockMatrix(F, down, experts * hidden, width)};
  float sum = 0.0f;
  for (int64_t i = 0; i < top_k; ++i) {
    const int64_t rows[1] = {slots.chosen[t * top_k + i] * hidden + j};
    float acc[1][1] = {};
    BlockDots<F, 1, 1>(m, rows, GlobalX{slots.act + (t * top_k + i) * width, width}, 0, width / BlockFormat<F>::kUnitElements, threadIdx.x & 31,
                       32, acc);
    sum += slots.weight[t * top_k + i] * WarpSum(acc[0][0]);
  }
  if ((threadIdx.x & 31) == 0) out[t * hidden + j] = sum;
}

}  // namespace

bool BlockGemvSupports(WeightType type, int64_t rows, int64_t k) {
  return IsBlockWeight(type) && rows >= 1 && rows <= kBlockGemvMaxRows && k > 0 && k % BlockShapeOf(type).elements == 0;
}

cudaError_t LaunchBlockGemv(const float* x, const void* const* w, float* const* y, const int64_t* n, int count, const void* up,
                            WeightType type, int64_t rows, int64_t k, cudaStream_t stream, BlockGemvMath math) {
  if (!BlockGemvSupports(type, rows, k) || count < 1 || count > kGemvMaxTargets || (up && count != 1)) return cudaErrorInvalidValue;
  if (math == BlockGemvMath::kInt8 && BlockGemvInt8Supports(type, rows, k)) return LaunchBlockGemvInt8(x, w, y, n, count, up, type, rows, k, stream);
  return WithBlockFormat(type, [&](auto format) {
    constexpr WeightType F = decltype(format)::value;
    return up ? LaunchFor<F, true>(x, w, y, n, count, up, rows, k, stream) : LaunchFor<F, false>(x, w, y, n, count, nullptr, rows, k, stream);
  });
}

cudaError_t LaunchBlockMoeExperts(const float* h, const void* gate_up, const void* down, WeightType type, int64_t tokens, int64_t hidden,
                                  int64_t experts, int64_t width, int64_t top_k, const MoeSlots& slots, float* out, cudaStream_t stream) {
  if (!IsBlockWeight(type) || hidden % BlockShapeOf(type).elements != 0 || width % BlockShapeOf(type).elements != 0) {
    return cudaErrorInvalidValue;
  }
  return WithBlockFormat(type, [&](auto format) {
    constexpr WeightType F = decltype(format)::value;
    const dim3 gate_grid(static_cast<unsigned>((top_k * width + kMoeWarps - 1) / kMoeWarps), static_cast<unsigned>(tokens));
    BlockMoeGateUpKernel<F><<<gate_grid, kMoeWarps * 32, 0, stream>>>(h, gate_up, experts, hidden, width, top_k, slots);
    const dim3 down_grid(static_cast<unsigned>((hidden + kMoeWarps - 1) / kMoeWarps), static_cast<unsigned>(tokens));
    BlockMoeDownKernel<F><<<down_grid, kMoeWarps * 32, 0, stream>>>(down, experts, hidden, width, top_k, slots, out);
    return cudaGetLastError();
  });
}

}  // namespace kiln::cuda
