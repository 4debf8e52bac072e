// The decode GEMV of Q4_0, Q8_0 and Q4_K weights with int8 activations (block_gemv.cuh,
// LaunchBlockGemvInt8): integer dot products (dp4a) instead of expanding every weight to a float.
//
// Why: the f32 kernel (block_gemv.cu) expands each 4-bit weight with a byte permute and a
// subtraction and multiplies it in f32, about 2 instructions an element: on an H100 that bounds
// a one-row Q4_0 GEMV by issue, not by memory (ncu: SM 51% busy, DRAM 37%). A dp4a multiplies 4
// int8 pairs and accumulates them in one instruction, so a 32-element block costs 8 dp4a and a few
// masks and shifts.
//
// x is quantized as llama.cpp quantizes activations (its Q8_1): per 32-element block, d = max|x| /
// 127, q = round(x / d) in [-127, 127], and s = d * sum(q). Then, for a weight block of scale d_w:
//   Q4_0: w = d_w (v - 8), v in [0, 15]:  dot = d_w (d sum(v q) - 8 s)
//   Q8_0: w = d_w v,       v in [-127, 127]: dot = d_w d sum(v q)
//   Q4_K: w = a v - b per 32-element sub-block: dot = a d sum(v q) - b s   (s over 16 elements at a time)
// Q6_K stays on the f32 kernel: its int8 variant measured slower (one 3840 x 15360 matrix on an
// H200: 33% of the copy bandwidth against 42%; bench/RESULTS.md).
// The integer sums are exact; the error is x's rounding, at most d / 2 an element (relative to
// the block's largest |x|, 1/254), which the tests bound (QuantKernelTest).
//
// Two kernels, by the number of x rows:
//   - one row (OneRowInt8Kernel, decode of one sequence): a thread block per 32 weight rows, x
//     quantized a 4,096-element tile at a time into shared memory, 8 warps streaming their rows'
//     16-byte units against it, 4 rows a warp (2 gate rows and their up rows with kGeluMul);
//   - 2 to 8 rows (RowsInt8Kernel: batched decode, speculative verify, short prompts): a
//     persistent grid, each thread block quantizing all of x into shared memory once, its warps
//     then taking row sets in turn (the first weight loads issued before the quantization), each
//     weight unit multiplied with every x row. Against the f32 kernel that is 1.1-3.2x on 12B
//     shapes at 2-8 rows; for one row it measured slower than the tiled kernel on half the
//     shapes (bench/RESULTS.md, "Int8 activations for 2-8 rows"), so one row keeps it.
#include "backends/cuda/kernels/block_gemv.cuh"

#include "backends/cuda/kernels/block_formats.cuh"
#include "backends/cuda/kernels/block_gemv_targets.cuh"
#include "backends/cuda/kernels/device_math.cuh"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>

namespace kiln::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
// The most shared memory a launch of several x rows stages x in (two thread blocks fit an SM):
// 32,768 elements at two rows, 8,192 at eight. Past it, BlockGemvInt8Supports says no and the f32
// kernels run.
constexpr int64_t kMaxSharedBytes = 106496;

// x's int8 bytes in shared memory with 16 bytes of padding after every 128: a lane reads the 32
// bytes of its Q4_0 block as two 16-byte loads, lanes 32 bytes apart, so 8 lanes of a phase
// would hit each bank group twice without it.
__host__ __device__ constexpr int64_t PaddedByte(int64_t byte) { return byte + 16 * (byte >> 7); }
// The bytes of k quantized elements, the per-block scales following at a 16-byte boundary.
__host__ __device__ constexpr int64_t StagedXBytes(int64_t k) { return (PaddedByte(k) + 15) / 16 * 16; }

// Per 32-element block of x: its scale d and d * sum(q) over each 16-element half (the K-quants'
// minimums and Q6_K's bias multiply a half at a time).
struct XBlock {
  float d, low_sum, high_sum, unused;
};

struct StagedX {
  const int8_t* q;      // PaddedByte layout
  const XBlock* block;  // per 32-element block of the tile
  __device__ uint4 Load16(int64_t element) const { return *reinterpret_cast<const uint4*>(q + PaddedByte(element)); }
  // d * sum(q) over the 16 elements from `element` (a multiple of 16).
  __device__ float HalfSum(int64_t element) const {
    const XBlock& b = block[element / 32];
    return element & 16 ? b.high_sum : b.low_sum;
  }
};

// One staged x row: its bytes, then its blocks' scales.
__host__ __device__ constexpr int64_t StagedRowBytes(int64_t k) { return StagedXBytes(k) + (k / 32) * static_cast<int64_t>(sizeof(XBlock)); }
__device__ __forceinline__ StagedX StagedRow(const int8_t* shared, int64_t k, int r) {
  const int8_t* row = shared + r * StagedRowBytes(k);
  return {row, reinterpret_cast<const XBlock*>(row + StagedXBytes(k))};
}

// sum_j a_j b_j over 16 int8 pairs (b the staged x).
__device__ __forceinline__ int Dot16(uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, const uint4& b) {
  int sum = __dp4a(static_cast<int>(a0), static_cast<int>(b.x), 0);
  sum = __dp4a(static_cast<int>(a1), static_cast<int>(b.y), sum);
  sum = __dp4a(static_cast<int>(a2), static_cast<int>(b.z), sum);
  return __dp4a(static_cast<int>(a3), static_cast<int>(b.w), sum);
}

// Quantizes x[start, start + width) into shared memory: each thread 4 elements a pass, the 8
// threads of a 32-element block meeting by shuffles (they are 8 consecutive lanes of one warp).
__device__ __forceinline__ void QuantizeTile(const float* __restrict__ x, int64_t start, int64_t width, int8_t* q, XBlock* blocks) {
  for (int64_t e = 4 * static_cast<int64_t>(threadIdx.x); e < width; e += 4 * kThreads) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(x + start + e));
    // Whole 32-element blocks are in or out of a pass together: the 8 lanes of one meet alone.
    const unsigned group = BlockLaneGroup();
    const Int8Quad quad = QuantizeInt8Quad(v, group);
    *reinterpret_cast<uint32_t*>(q + PaddedByte(e)) = quad.packed;
    // Sums over each half: lanes 0-3 of the 8 hold the low 16 elements, lanes 4-7 the high.
    int sum = quad.sum;
    sum += __shfl_xor_sync(group, sum, 1);
    sum += __shfl_xor_sync(group, sum, 2);
    const int other = __shfl_xor_sync(group, sum, 4);
    if ((threadIdx.x & 7) == 0) blocks[e / 32] = {quad.d, quad.d * static_cast<float>(sum), quad.d * static_cast<float>(other), 0.0f};
  }
}

template <WeightType F>
struct Int8Dot;

// A unit is a block: 16 bytes of nibbles, low nibbles elements 0-15, high 16-31.
template <>
struct Int8Dot<WeightType::kQ4_0> {
  static constexpr int kUnitElements = 32;
  static constexpr int kLoads = 4;  // units in flight per stream
  using Unit = BlockFormat<WeightType::kQ4_0>::Unit;
  __device__ static float Dot(const Unit& u, int64_t unit, int64_t tile_start, const StagedX& x) {
    const int64_t element = 32 * unit - tile_start;
    const int sum = Dot16(u.q.x & 0x0F0F0F0Fu, u.q.y & 0x0F0F0F0Fu, u.q.z & 0x0F0F0F0Fu, u.q.w & 0x0F0F0F0Fu, x.Load16(element)) +
                    Dot16((u.q.x >> 4) & 0x0F0F0F0Fu, (u.q.y >> 4) & 0x0F0F0F0Fu, (u.q.z >> 4) & 0x0F0F0F0Fu, (u.q.w >> 4) & 0x0F0F0F0Fu,
                          x.Load16(element + 16));
    const XBlock& b = x.block[element / 32];
    return u.d * fmaf(b.d, static_cast<float>(sum), -8.0f * (b.low_sum + b.high_sum));
  }
};

// A unit is 16 bytes of a 256-element block (block_formats.cuh): low nibbles 16 elements of
// sub-block 2c, high nibbles the same 16 positions of sub-block 2c + 1; w = d sc q - dmin m.
template <>
struct Int8Dot<WeightType::kQ4_K> {
  static constexpr int kUnitElements = 32;
  static constexpr int kLoads = 2;
  using Format = BlockFormat<WeightType::kQ4_K>;
  using Unit = Format::Unit;
  __device__ static float Dot(const Unit& u, int64_t unit, int64_t tile_start, const StagedX& x) {
    const int64_t low = Format::Offset(unit, 0) - tile_start, high = Format::Offset(unit, 1) - tile_start;
    const int low_sum = Dot16(u.q.x & 0x0F0F0F0Fu, u.q.y & 0x0F0F0F0Fu, u.q.z & 0x0F0F0F0Fu, u.q.w & 0x0F0F0F0Fu, x.Load16(low));
    const int high_sum = Dot16((u.q.x >> 4) & 0x0F0F0F0Fu, (u.q.y >> 4) & 0x0F0F0F0Fu, (u.q.z >> 4) & 0x0F0F0F0Fu,
                               (u.q.w >> 4) & 0x0F0F0F0Fu, x.Load16(high));
    const int sub = 2 * static_cast<int>((unit & 7) >> 1);
    float low_scale, low_offset, high_scale, high_offset;
    KScaleOffset(u.meta, sub, &low_scale, &low_offset);
    KScaleOffset(u.meta, sub + 1, &high_scale, &high_offset);
    return low_scale * x.block[low / 32].d * static_cast<float>(low_sum) - low_offset * x.HalfSum(low) +
           high_scale * x.block[high / 32].d * static_cast<float>(high_sum) - high_offset * x.HalfSum(high);
  }
};

// A unit is half a block: 16 signed bytes.
template <>
struct Int8Dot<WeightType::kQ8_0> {
  static constexpr int kUnitElements = 16;
  static constexpr int kLoads = 4;
  using Unit = BlockFormat<WeightType::kQ8_0>::Unit;
  __device__ static float Dot(const Unit& u, int64_t unit, int64_t tile_start, const StagedX& x) {
    const int64_t element = 16 * unit - tile_start;
    const int sum = Dot16(u.q.x, u.q.y, u.q.z, u.q.w, x.Load16(element));
    return u.d * x.block[element / 32].d * static_cast<float>(sum);
  }
};

// ---- One x row: a thread block per 32 weight rows (16 with kGeluMul), x quantized a tile of
// kTile elements at a time into static shared memory (any k). Measured against the persistent
// kernel below for one row (bench/RESULTS.md): faster on half the 12B shapes (up to 1.4x), at
// most 8% slower on the others.

constexpr int64_t kTile = 4096;  // x elements staged at a time (a multiple of every block)
constexpr int64_t kTileBlocks = kTile / 32;
constexpr int64_t kTileBytes = PaddedByte(kTile);

template <WeightType F, bool kGeluMul>
__global__ void __launch_bounds__(kThreads) OneRowInt8Kernel(const float* __restrict__ x, BlockTargets targets, const void* up, int64_t k) {
  constexpr int P = kGeluMul ? 2 : 4, S = kGeluMul ? 2 * P : P;
  using Dot = Int8Dot<F>;
  using Format = BlockFormat<F>;
  constexpr int U = Dot::kLoads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const BlockTarget target = TargetOf(targets, blockIdx.x);
  const int64_t base = ((static_cast<int64_t>(blockIdx.x) - target.first) * kWarps + warp) * P;
  const bool active = base < target.n;  // a warp past the last row still quantizes x and meets the barriers
  BlockMatrix m[S];
  int64_t rows[S];
  const BlockMatrix a = MakeBlockMatrix(F, target.w, target.n, k);
#pragma unroll
  for (int p = 0; p < P; ++p) {
    m[p] = a;
    rows[p] = base + p < target.n ? base + p : target.n - 1;  // rows past the end read the last row, are not written
  }
  if constexpr (kGeluMul) {
    const BlockMatrix b = MakeBlockMatrix(F, up, target.n, k);
#pragma unroll
    for (int p = 0; p < P; ++p) m[P + p] = b, rows[P + p] = rows[p];
  }
  __shared__ __align__(16) int8_t xq[kTileBytes];
  __shared__ XBlock xs[kTileBlocks];
  const StagedX staged{xq, xs};
  float acc[S] = {};
  for (int64_t start = 0; start < k; start += kTile) {
    const int64_t width = k - start < kTile ? k - start : kTile;
    __syncthreads();  // the previous tile's reads are done
    QuantizeTile(x, start, width, xq, xs);
    __syncthreads();
    if (!active) continue;
    const int64_t unit_end = (start + width) / Dot::kUnitElements;
    for (int64_t c = start / Dot::kUnitElements + lane; c < unit_end; c += 32 * U) {
      typename Format::Unit unit[U][S];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t at = c + 32 * u;
#pragma unroll
        for (int s = 0; s < S; ++s) unit[u][s] = at < unit_end ? Format::Load(m[s], rows[s], at) : typename Format::Unit{};
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t at = c + 32 * u;
        if (at >= unit_end) break;
#pragma unroll
        for (int s = 0; s < S; ++s) acc[s] += Dot::Dot(unit[u][s], at, start, staged);
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    float value = WarpSum(acc[p]);
    if constexpr (kGeluMul) value = GeluTanh(value) * WarpSum(acc[P + p]);
    if (lane == 0 && base + p < target.n) target.y[base + p] = value;
  }
}

template <WeightType F>
cudaError_t LaunchOneRow(const float* x, const void* const* w, float* const* y, const int64_t* n, int count, const void* up, int64_t k,
                       cudaStream_t stream) {
  const BlockTargets targets = MakeBlockTargets(w, y, n, count, kWarps * (up ? 2 : 4));
  if (targets.blocks() == 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(targets.blocks());
  if (up) {
    OneRowInt8Kernel<F, true><<<grid, kThreads, 0, stream>>>(x, targets, up, k);
  } else {
    OneRowInt8Kernel<F, false><<<grid, kThreads, 0, stream>>>(x, targets, nullptr, k);
  }
  return cudaGetLastError();
}

// ---- 2 to 8 x rows: a persistent grid over x staged whole.

// The weight rows one warp multiplies with the R (2 to 8) x rows at a time: P output rows (and, with
// kGeluMul, their up rows). Every x row costs S accumulators a lane, so more x rows take fewer
// weight rows and fewer units in flight (the arithmetic per byte grows with R).
template <WeightType F, bool kGeluMul, int R>
struct RowSet {
  using Format = BlockFormat<F>;
  using Unit = typename Format::Unit;
  // Q4_K's 32-byte units (quants and the block's scales) count as two x rows' worth of registers.
  static constexpr bool kLargeUnit = sizeof(Unit) > 20;
  static constexpr bool kWide = R > 2 || (R == 2 && kLargeUnit);
  static constexpr int P = kGeluMul ? (kWide ? 1 : 2) : (kWide ? 2 : 4), S = kGeluMul ? 2 * P : P;
  static constexpr int U = R <= 4 && !kLargeUnit ? 2 : 1;
  BlockMatrix m[S];
  int64_t rows[S];
  float* y;
  int64_t first_row, n;

  __device__ RowSet(const BlockTargets& targets, const void* up, int64_t k, int64_t group) {
    const BlockTarget target = TargetOf(targets, group);
    y = target.y;
    n = target.n;
    first_row = (group - target.first) * P;
    const BlockMatrix a = MakeBlockMatrix(F, target.w, target.n, k);
#pragma unroll
    for (int p = 0; p < P; ++p) {
      m[p] = a;
      rows[p] = first_row + p < n ? first_row + p : n - 1;  // rows past the end read the last row, are not written
    }
    if constexpr (kGeluMul) {
      const BlockMatrix b = MakeBlockMatrix(F, up, target.n, k);
#pragma unroll
      for (int p = 0; p < P; ++p) m[P + p] = b, rows[P + p] = rows[p];
    }
  }
  // The units c, c + 32, ..., c + 32 (U - 1) of every row (those before unit_end).
  __device__ void Load(int64_t c, int64_t unit_end, Unit (&unit)[U][S]) const {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + 32 * u;
#pragma unroll
      for (int s = 0; s < S; ++s) unit[u][s] = at < unit_end ? Format::Load(m[s], rows[s], at) : Unit{};
    }
  }
  __device__ static void Accumulate(const Unit (&unit)[U][S], int64_t c, int64_t unit_end, const int8_t* shared, int64_t k,
                                    float (&acc)[S][R]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t at = c + 32 * u;
      if (at >= unit_end) break;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const StagedX x = StagedRow(shared, k, r);
#pragma unroll
        for (int s = 0; s < S; ++s) acc[s][r] += Int8Dot<F>::Dot(unit[u][s], at, 0, x);
      }
    }
  }
  __device__ void Store(const float (&acc)[S][R], int lane) const { StoreWarpRows<P, S, R, kGeluMul>(acc, lane, y, n, first_row); }
};

// A persistent grid: each thread block quantizes the whole of x (R rows) into shared memory once, and each
// warp then multiplies `rounds` row sets (groups) against it, warp w taking groups w, w + W, ...
// (W warps in all). The first group's first loads are issued before x is quantized, so the weight
// stream starts with the kernel; later loads overlap the other warps' arithmetic. The host picks W
// so that every warp takes the same number of groups (LaunchRows).
template <WeightType F, bool kGeluMul, int R>
__global__ void __launch_bounds__(kThreads, 2)
    RowsInt8Kernel(const float* __restrict__ x, BlockTargets targets, const void* up, int64_t k, int64_t groups, int64_t warps) {
  using Set = RowSet<F, kGeluMul, R>;
  extern __shared__ __align__(16) int8_t shared[];
  const int lane = threadIdx.x & 31;
  const int64_t unit_end = k / Int8Dot<F>::kUnitElements;
  int64_t group = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (group >= warps) group = groups;  // the last block's spare warps only quantize x
  typename Set::Unit unit[Set::U][Set::S];
  bool loaded = false;
  if (group < groups) {
    Set(targets, up, k, group).Load(lane, unit_end, unit);
    loaded = true;
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    int8_t* row = shared + r * StagedRowBytes(k);
    QuantizeTile(x + r * k, 0, k, row, reinterpret_cast<XBlock*>(row + StagedXBytes(k)));
  }
  __syncthreads();
  for (; group < groups; group += warps) {
    const Set set(targets, up, k, group);
    float acc[Set::S][R] = {};
    for (int64_t c = lane; c < unit_end; c += 32 * Set::U) {
      if (!loaded) set.Load(c, unit_end, unit);
      loaded = false;
      Set::Accumulate(unit, c, unit_end, shared, k, acc);
    }
    loaded = false;  // a lane with no units of its own loaded nothing to keep
    set.Store(acc, lane);
  }
}

// The warps of `kernel` the current device holds at once with `shared` bytes of dynamic shared
// memory a block. Asked of the runtime once per (device, kernel, size) and remembered: steps that
// are not replayed from a CUDA graph (speculative verify, mixed batches) launch these kernels a few
// hundred times each. The first use also lets the kernel take kMaxSharedBytes.
cudaError_t ResidentWarps(const void* kernel, size_t shared, int64_t* warps) {
  int device = 0;
  if (cudaError_t s = cudaGetDevice(&device); s != cudaSuccess) return s;
  static std::mutex mutex;
  static std::map<std::tuple<int, const void*, size_t>, int64_t> known;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(device, kernel, shared);
  if (auto it = known.find(key); it != known.end()) {
    *warps = it->second;
    return cudaSuccess;
  }
  if (cudaError_t s = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kMaxSharedBytes));
      s != cudaSuccess) {
    return s;
  }
  int multiprocessors = 0, resident = 0;
  if (cudaError_t s = cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device); s != cudaSuccess) return s;
  if (cudaError_t s = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, kThreads, shared); s != cudaSuccess) return s;
  *warps = known[key] = static_cast<int64_t>(std::max(resident, 1)) * multiprocessors * kWarps;
  return cudaSuccess;
}

template <WeightType F, bool kGeluMul, int R>
cudaError_t LaunchRows(const float* x, const void* const* w, float* const* y, const int64_t* n, int count, const void* up, int64_t k,
                       cudaStream_t stream) {
  const BlockTargets targets = MakeBlockTargets(w, y, n, count, RowSet<F, kGeluMul, R>::P);
  const int64_t groups = targets.blocks();
  if (groups == 0) return cudaSuccess;
  const auto kernel = RowsInt8Kernel<F, kGeluMul, R>;
  const size_t shared = static_cast<size_t>(R * StagedRowBytes(k));
  int64_t most = 0;
  if (cudaError_t s = ResidentWarps(reinterpret_cast<const void*>(kernel), shared, &most); s != cudaSuccess) return s;
  // As many warps as fit at once, then as few as take the same number of groups each: 3,840
  // groups over 4,224 resident warps take one round of 3,840 warps, over 3,000 two rounds of 1,920.
  const int64_t rounds = (groups + most - 1) / most;
  const int64_t warps = (groups + rounds - 1) / rounds;
  const unsigned grid = static_cast<unsigned>((warps + kWarps - 1) / kWarps);
  kernel<<<grid, kThreads, shared, stream>>>(x, targets, up, k, groups, warps);
  return cudaGetLastError();
}
}  // namespace

bool BlockGemvInt8Supports(WeightType type, int64_t rows, int64_t k) {
  const bool format = type == WeightType::kQ4_0 || type == WeightType::kQ8_0 || type == WeightType::kQ4_K;
  // One row stages x a tile at a time (any k); more rows stage it whole.
  return format && rows >= 1 && rows <= kBlockGemvMaxRows && k > 0 && k % BlockShapeOf(type).elements == 0 &&
         (rows == 1 || rows * StagedRowBytes(k) <= kMaxSharedBytes);
}

cudaError_t LaunchBlockGemvInt8(const float* x, const void* const* w, float* const* y, const int64_t* n, int count, const void* up,
                                WeightType type, int64_t rows, int64_t k, cudaStream_t stream) {
  if (!BlockGemvInt8Supports(type, rows, k) || count < 1 || count > kGemvMaxTargets || (up && count != 1)) return cudaErrorInvalidValue;
  const auto launch = [&](auto format) {
    constexpr WeightType F = decltype(format)::value;
    const auto with_rows = [&](auto rows_constant) {
      constexpr int R = decltype(rows_constant)::value;
      return up ? LaunchRows<F, true, R>(x, w, y, n, count, up, k, stream) : LaunchRows<F, false, R>(x, w, y, n, count, nullptr, k, stream);
    };
    switch (rows) {
      case 1: return LaunchOneRow<F>(x, w, y, n, count, up, k, stream);
      case 2: return with_rows(std::integral_constant<int, 2>{});
      case 3: return with_rows(std::integral_constant<int, 3>{});
      case 4: return with_rows(std::integral_constant<int, 4>{});
      case 5: return with_rows(std::integral_constant<int, 5>{});
      case 6: return with_rows(std::integral_constant<int, 6>{});
      case 7: return with_rows(std::integral_constant<int, 7>{});
      default: return with_rows(std::integral_constant<int, 8>{});
    }
  };
  switch (type) {
    case WeightType::kQ4_0: return launch(std::integral_constant<WeightType, WeightType::kQ4_0>{});
    case WeightType::kQ8_0: return launch(std::integral_constant<WeightType, WeightType::kQ8_0>{});
    default: return launch(std::integral_constant<WeightType, WeightType::kQ4_K>{});
  }
}

}  // namespace kiln::cuda
