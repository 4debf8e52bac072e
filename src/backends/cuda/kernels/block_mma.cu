// The int8 tensor-core linear of block_mma.cuh.
//
// Fragments (mma.sync m16n8k32 s8, PTX ISA "Matrix fragments for mma.m16n8k32"): lane = 4 g + t.
// A (16 x 32, row-major) is x: registers 0-3 hold rows g, g + 8, g, g + 8 at k 4t..4t+3 (0, 1) and
// 16+4t..16+4t+3 (2, 3). B (32 x 8, column-major) is the weight: column g, k 4t..4t+3 and
// 16+4t..16+4t+3. C (16 x 8, s32): rows g (0, 1) and g + 8 (2, 3), columns 2t and 2t + 1.
// So x is the 16-token side and the weight the 8-row side, and a Q4_0 block's 4 bytes at 4t hold
// both B registers of lane t: low nibbles k 4t.., high nibbles k 16+4t.. (the GGUF order). Q4_K's
// sub-block pairs (32 bytes, low nibbles one sub-block, high the next) give two steps' registers
// from two loads; Q8_0's 32 bytes one block's. Q6_K scales every 16 elements, so its 32-element
// steps run as two m16n8k16 products (A registers 0-1 and 2-3, one B register each).
//
// Work split: a thread block owns 32 weight rows (4 n-tiles of 8) and a group of up to 64 tokens
// (MT m-tiles of 16); its 8 warps take the k steps in turn, each keeping every (token, row) sum
// of its steps in registers, and the warps' sums meet in shared memory at the end. The weight
// loads of the next steps are issued before the current step's arithmetic.
#include "backends/cuda/kernels/block_mma.cuh"

#include "backends/cuda/kernels/block_formats.cuh"
#include "backends/cuda/kernels/device_math.cuh"

#include <algorithm>

namespace kiln::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kTiles = 4;  // n-tiles of 8 weight rows a thread block
constexpr int kBlockRows = 8 * kTiles;
constexpr int kMaxTokenTiles = 4;  // m-tiles of 16 tokens a thread block

// Per 32-element block of x: its scale d = max|x| / 127 and d * sum(q).
struct XScale {
  float d, s;
};

int64_t AlignUp256(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// m-tiles a thread block takes for `rows` tokens, and the padded token count.
int TokenTiles(int64_t rows) { return static_cast<int>(std::min<int64_t>(kMaxTokenTiles, (rows + 15) / 16)); }
int64_t PaddedRows(int64_t rows) {
  const int64_t group = 16 * TokenTiles(rows);
  return (rows + group - 1) / group * group;
}

// x[rows, k] f32 -> q int8 [padded, k] and its scales [padded, k / 32]; the padding rows are 0.
// Each thread takes 4 elements; the 8 lanes of one 32-element block meet by shuffles (k is a
// multiple of 32, so a block is wholly in or out of range).
__global__ void QuantizeXKernel(const float* __restrict__ x, int64_t rows, int64_t padded, int64_t k, int8_t* __restrict__ q,
                                XScale* __restrict__ scales) {
  const int64_t e = 4 * (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x);
  if (e >= padded * k) return;
  float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (e / k < rows) v = __ldg(reinterpret_cast<const float4*>(x + e));
  const unsigned group = BlockLaneGroup();
  const Int8Quad quad = QuantizeInt8Quad(v, group);
  *reinterpret_cast<uint32_t*>(q + e) = quad.packed;
  int sum = quad.sum;
#pragma unroll
  for (int mask = 1; mask < 8; mask <<= 1) sum += __shfl_xor_sync(group, sum, mask);
  if ((threadIdx.x & 7) == 0) scales[e / 32] = {quad.d, quad.d * static_cast<float>(sum)};
}

__device__ __forceinline__ void Mma(int (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void Mma16(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b) {
  asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a0), "r"(a1), "r"(b));
}

// One n-tile's share of a k step: lane (g, t)'s B registers for each of the step's 32-element
// blocks (weight row g of the tile) and the scales of its C columns (rows 2t and 2t + 1), one per
// block or, with kHalves = 2, one per 16-element half (Q6_K, multiplied as two k16 products).
template <int kBlocks, int kHalves, bool kOffset>
struct StepTile {
  uint32_t b[kBlocks][2];
  float scale[kBlocks][kHalves][2];
  float offset[kBlocks][kOffset ? 2 : 1];
};

template <WeightType F>
struct MmaWeights;

// The f16 block scales of a step's C rows (Q4_0, Q8_0: one block a step).
template <typename Tile>
__device__ __forceinline__ void LoadBlockScales(const BlockMatrix& m, const int64_t (&scale_rows)[2], int64_t step, Tile& tile) {
#pragma unroll
  for (int i = 0; i < 2; ++i) tile.scale[0][0][i] = LoadF16(m.section[1], scale_rows[i] * m.blocks_per_row + step);
}

// A step is one block: 16 bytes of nibbles, low k 0-15, high 16-31; v - 8 as signed bytes.
template <>
struct MmaWeights<WeightType::kQ4_0> {
  static constexpr int kStepBlocks = 1, kUnroll = 2, kHalves = 1;
  using Tile = StepTile<1, 1, false>;
  __device__ static Tile Load(const BlockMatrix& m, int64_t row, const int64_t (&scale_rows)[2], int64_t step, int t) {
    const uint32_t word = __ldg(reinterpret_cast<const uint32_t*>(m.section[0]) + (row * m.blocks_per_row + step) * 4 + t);
    Tile tile;
    tile.b[0][0] = __vsub4(word & 0x0F0F0F0Fu, 0x08080808u);
    tile.b[0][1] = __vsub4((word >> 4) & 0x0F0F0F0Fu, 0x08080808u);
    LoadBlockScales(m, scale_rows, step, tile);
    return tile;
  }
};

// A step is one block of 32 signed bytes.
template <>
struct MmaWeights<WeightType::kQ8_0> {
  static constexpr int kStepBlocks = 1, kUnroll = 2, kHalves = 1;
  using Tile = StepTile<1, 1, false>;
  __device__ static Tile Load(const BlockMatrix& m, int64_t row, const int64_t (&scale_rows)[2], int64_t step, int t) {
    const uint32_t* words = reinterpret_cast<const uint32_t*>(m.section[0]) + (row * m.blocks_per_row + step) * 8;
    Tile tile;
    tile.b[0][0] = __ldg(words + t);
    tile.b[0][1] = __ldg(words + 4 + t);
    LoadBlockScales(m, scale_rows, step, tile);
    return tile;
  }
};

// A step is a pair of sub-blocks (j = 2p, 2p + 1 of a 256-element block): 32 bytes whose low
// nibbles are sub-block 2p and high nibbles 2p + 1; v unsigned, w = scale v - offset.
template <>
struct MmaWeights<WeightType::kQ4_K> {
  static constexpr int kStepBlocks = 2, kUnroll = 1, kHalves = 1;
  using Tile = StepTile<2, 1, true>;
  __device__ static Tile Load(const BlockMatrix& m, int64_t row, const int64_t (&scale_rows)[2], int64_t step, int t) {
    const int64_t block = step >> 2;
    const int pair = static_cast<int>(step & 3);
    const uint32_t* words = reinterpret_cast<const uint32_t*>(m.section[0]) + (row * m.blocks_per_row + block) * 32 + 8 * pair;
    const uint32_t w0 = __ldg(words + t), w1 = __ldg(words + 4 + t);
    Tile tile;
    tile.b[0][0] = w0 & 0x0F0F0F0Fu;
    tile.b[0][1] = w1 & 0x0F0F0F0Fu;
    tile.b[1][0] = (w0 >> 4) & 0x0F0F0F0Fu;
    tile.b[1][1] = (w1 >> 4) & 0x0F0F0F0Fu;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const uint4 meta = __ldg(reinterpret_cast<const uint4*>(m.section[1]) + scale_rows[i] * m.blocks_per_row + block);
      KScaleOffset(meta, 2 * pair, &tile.scale[0][0][i], &tile.offset[0][i]);
      KScaleOffset(meta, 2 * pair + 1, &tile.scale[1][0][i], &tile.offset[1][i]);
    }
    return tile;
  }
};

// A step is 32 elements of a 256-element block: 16-element groups G = 2j and 2j + 1 (j = 0..7), each
// with its own i8 scale, 6-bit values q - 32 from ql (4 bits) and qh (2 bits), laid out as
// DequantizeQ6_K reads them: half h = j / 4 and quarter r = j % 4 of the block; element l of the
// quarter is the nibble (r >> 1) of ql[64h + 32 (r & 1) + l] and bits 2r of qh[32h + l].
template <>
struct MmaWeights<WeightType::kQ6_K> {
  static constexpr int kStepBlocks = 1, kUnroll = 2, kHalves = 2;
  using Tile = StepTile<1, 2, false>;
  __device__ static Tile Load(const BlockMatrix& m, int64_t row, const int64_t (&scale_rows)[2], int64_t step, int t) {
    const int64_t block = step >> 3;
    const int j = static_cast<int>(step & 7), half = j >> 2, quarter = j & 3;
    const uint32_t* ql = reinterpret_cast<const uint32_t*>(m.section[0]) + (row * m.blocks_per_row + block) * 32 + 16 * half + 8 * (quarter & 1);
    const uint32_t* qh = reinterpret_cast<const uint32_t*>(m.section[1]) + (row * m.blocks_per_row + block) * 16 + 8 * half;
    const int low_shift = 4 * (quarter >> 1), high_shift = 2 * quarter;
    Tile tile;
#pragma unroll
    for (int g16 = 0; g16 < 2; ++g16) {
      const uint32_t low = (__ldg(ql + 4 * g16 + t) >> low_shift) & 0x0F0F0F0Fu;
      const uint32_t high = ((__ldg(qh + 4 * g16 + t) >> high_shift) & 0x03030303u) << 4;
      tile.b[0][g16] = __vsub4(low | high, 0x20202020u);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int64_t scale_block = scale_rows[i] * m.blocks_per_row + block;
      const float d = LoadF16(m.section[3], scale_block);
      const int8_t* scales = reinterpret_cast<const int8_t*>(m.section[2]) + scale_block * 16 + 2 * j;
      tile.scale[0][0][i] = __fmul_rn(d, static_cast<float>(__ldg(scales)));
      tile.scale[0][1][i] = __fmul_rn(d, static_cast<float>(__ldg(scales + 1)));
    }
    return tile;
  }
};

template <WeightType F, int MT>
__global__ void __launch_bounds__(kThreads) BlockMmaKernel(const int8_t* __restrict__ xq, const XScale* __restrict__ xs, const void* w,
                                                            int64_t rows, int64_t n, int64_t k, float* __restrict__ y) {
  using Weights = MmaWeights<F>;
  using Tile = typename Weights::Tile;
  constexpr int B = Weights::kStepBlocks, U = Weights::kUnroll;
  constexpr bool kOffset = F == WeightType::kQ4_K;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kBlockRows;
  const int64_t first_token = static_cast<int64_t>(blockIdx.y) * 16 * MT;
  const BlockMatrix m = MakeBlockMatrix(F, w, n, k);
  // Rows past n read the last row and are not written.
  int64_t b_rows[kTiles], c_rows[kTiles][2];
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
    const int64_t base = first_row + 8 * nt;
    b_rows[nt] = base + g < n ? base + g : n - 1;
    c_rows[nt][0] = base + 2 * t < n ? base + 2 * t : n - 1;
    c_rows[nt][1] = base + 2 * t + 1 < n ? base + 2 * t + 1 : n - 1;
  }
  const int64_t words_per_row = k / 4, blocks_per_row = k / 32;
  const uint32_t* x_words = reinterpret_cast<const uint32_t*>(xq);
  float acc[MT][kTiles][4] = {};
  const int64_t steps = k / (32 * B);
  for (int64_t s0 = warp; s0 < steps; s0 += kWarps * U) {
    Tile tiles[U][kTiles];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t s = s0 + u * kWarps;
      if (s >= steps) break;
#pragma unroll
      for (int nt = 0; nt < kTiles; ++nt) tiles[u][nt] = Weights::Load(m, b_rows[nt], c_rows[nt], s, t);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t s = s0 + u * kWarps;
      if (s >= steps) break;
#pragma unroll
      for (int b = 0; b < B; ++b) {
        const int64_t block = s * B + b;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const int64_t token = first_token + 16 * mt + g;
          const uint32_t* x0 = x_words + token * words_per_row + 8 * block + t;
          const uint32_t* x1 = x0 + 8 * words_per_row;
          const uint32_t a[4] = {__ldg(x0), __ldg(x1), __ldg(x0 + 4), __ldg(x1 + 4)};
          const float2 xa = __ldg(reinterpret_cast<const float2*>(xs) + token * blocks_per_row + block);
          const float2 xb = __ldg(reinterpret_cast<const float2*>(xs) + (token + 8) * blocks_per_row + block);
          const float dx[2] = {xa.x, xb.x}, sx[2] = {xa.y, xb.y};
#pragma unroll
          for (int nt = 0; nt < kTiles; ++nt) {
            const Tile& tile = tiles[u][nt];
            if constexpr (Weights::kHalves == 2) {
              int low[4] = {0, 0, 0, 0}, high[4] = {0, 0, 0, 0};
              Mma16(low, a[0], a[1], tile.b[b][0]);
              Mma16(high, a[2], a[3], tile.b[b][1]);
#pragma unroll
              for (int i = 0; i < 4; ++i) {
                const float sum = fmaf(static_cast<float>(low[i]), tile.scale[b][0][i & 1], static_cast<float>(high[i]) * tile.scale[b][1][i & 1]);
                acc[mt][nt][i] = fmaf(sum, dx[i >> 1], acc[mt][nt][i]);
              }
            } else {
              int c[4] = {0, 0, 0, 0};
              Mma(c, a, tile.b[b][0], tile.b[b][1]);
#pragma unroll
              for (int i = 0; i < 4; ++i) {
                float term = static_cast<float>(c[i]) * (dx[i >> 1] * tile.scale[b][0][i & 1]);
                if constexpr (kOffset) term = fmaf(-tile.offset[b][i & 1], sx[i >> 1], term);
                acc[mt][nt][i] += term;
              }
            }
          }
        }
      }
    }
  }
  // The warps' sums meet here, an m-tile at a time: [warp][entry][lane], entry = 4 nt + i.
  __shared__ float partial[kWarps * kTiles * 4 * 32];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    if (mt > 0) __syncthreads();  // the previous m-tile's sums are read
#pragma unroll
    for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) partial[(warp * kTiles * 4 + 4 * nt + i) * 32 + lane] = acc[mt][nt][i];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < kTiles * 4 * 32; e += kThreads) {
      const int entry = e >> 5, l = e & 31, nt = entry >> 2, i = entry & 3;
      float sum = 0.0f;
#pragma unroll
      for (int wi = 0; wi < kWarps; ++wi) sum += partial[(wi * kTiles * 4 + entry) * 32 + l];
      const int64_t token = first_token + 16 * mt + (l >> 2) + 8 * (i >> 1);
      const int64_t row = first_row + 8 * nt + 2 * (l & 3) + (i & 1);
      if (token < rows && row < n) y[token * n + row] = sum;
    }
  }
}

template <WeightType F>
cudaError_t Launch(const int8_t* xq, const XScale* xs, const void* w, int64_t rows, int64_t n, int64_t k, float* y, cudaStream_t stream) {
  const int tiles = TokenTiles(rows);
  const dim3 grid(static_cast<unsigned>((n + kBlockRows - 1) / kBlockRows), static_cast<unsigned>(PaddedRows(rows) / (16 * tiles)));
  switch (tiles) {
    case 1: BlockMmaKernel<F, 1><<<grid, kThreads, 0, stream>>>(xq, xs, w, rows, n, k, y); break;
    case 2: BlockMmaKernel<F, 2><<<grid, kThreads, 0, stream>>>(xq, xs, w, rows, n, k, y); break;
    case 3: BlockMmaKernel<F, 3><<<grid, kThreads, 0, stream>>>(xq, xs, w, rows, n, k, y); break;
    default: BlockMmaKernel<F, 4><<<grid, kThreads, 0, stream>>>(xq, xs, w, rows, n, k, y); break;
  }
  return cudaGetLastError();
}

}  // namespace

bool BlockMmaSupports(WeightType type, int64_t k) {
  const bool format = type == WeightType::kQ4_0 || type == WeightType::kQ8_0 || type == WeightType::kQ4_K || type == WeightType::kQ6_K;
  return format && k > 0 && k % BlockShapeOf(type).elements == 0;
}

int64_t BlockMmaScratchBytes(int64_t rows, int64_t k) {
  const int64_t padded = PaddedRows(rows);
  return AlignUp256(padded * k) + padded * (k / 32) * static_cast<int64_t>(sizeof(XScale));
}

cudaError_t LaunchBlockMma(const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y, void* scratch,
                           cudaStream_t stream) {
  if (!BlockMmaSupports(type, k) || rows < 1 || n < 1 || !scratch) return cudaErrorInvalidValue;
  const int64_t padded = PaddedRows(rows);
  int8_t* xq = static_cast<int8_t*>(scratch);
  XScale* xs = reinterpret_cast<XScale*>(xq + AlignUp256(padded * k));
  const int64_t threads = padded * k / 4;
  QuantizeXKernel<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(x, rows, padded, k, xq, xs);
  if (cudaError_t s = cudaGetLastError(); s != cudaSuccess) return s;
  switch (type) {
    case WeightType::kQ4_0: return Launch<WeightType::kQ4_0>(xq, xs, w, rows, n, k, y, stream);
    case WeightType::kQ8_0: return Launch<WeightType::kQ8_0>(xq, xs, w, rows, n, k, y, stream);
    case WeightType::kQ6_K: return Launch<WeightType::kQ6_K>(xq, xs, w, rows, n, k, y, stream);
    default: return Launch<WeightType::kQ4_K>(xq, xs, w, rows, n, k, y, stream);
  }
}

}  // namespace kiln::cuda
