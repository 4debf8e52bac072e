#include <cuda_bf16.h>

#include <cmath>
#include <type_traits>

#include "backends/cuda/kernels/attention_prefill.cuh"
#include "backends/cuda/kernels/device_math.cuh"

namespace kiln::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarp;
constexpr int kRowsPerWarp = 16;              // the M of one mma.sync m16n8k16
constexpr int kRows = kRowsPerWarp * kWarps;  // query rows per block

struct Params {
  const float* q;
  const int32_t* positions;
  const int32_t* sequences;
  const int32_t* runs;  // num_runs + 1 token offsets
  int64_t num_runs;
  const __nv_bfloat16* cache_k;
  const __nv_bfloat16* cache_v;
  KvPages pages;
  float* out;
  int64_t heads, group, window;
  int head_dim;
  int qk_stride;   // elements per Q / K row in shared memory
  int qk_swizzle;  // XOR mask of the 16-byte chunk index (0: padded rows instead)
  float scale_log2;
};

// Tiles in shared memory are rows of bf16 cut into 16-byte chunks. ldmatrix reads 8 rows of one
// chunk column at once, so rows whose stride is a multiple of 128 bytes would all hit the same
// banks: when head_dim % 64 == 0 the chunk index is XORed with (row % 8), otherwise rows are padded
// by one chunk. Returns the byte offset of the chunk holding (row, col), col a multiple of 8.
__device__ __forceinline__ uint32_t ChunkOffset(int row, int col, int stride, int swizzle) {
  return static_cast<uint32_t>(row * stride * 2 + (((col >> 3) ^ (row & swizzle)) << 4));
}

__device__ __forceinline__ void LoadMatrixX4(uint32_t address, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}

__device__ __forceinline__ void LoadMatrixX4Transposed(uint32_t address, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}

// d (16x8 f32) += a (16x16 bf16, row-major fragment) . b (16x8 bf16, column fragment b0, b1).
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void CopyAsync16(uint32_t shared_address, const void* global) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address), "l"(global) : "memory");
}

__device__ __forceinline__ void StoreZero16(uint32_t shared_address) {
  asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(shared_address), "r"(0) : "memory");
}

__device__ __forceinline__ void CommitCopies() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `pending` of the committed copy groups are still in flight.
template <int pending>
__device__ __forceinline__ void WaitCopies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

__device__ __forceinline__ int64_t FirstVisible(int64_t position, int64_t window) {
  return window > 0 ? max(int64_t{0}, position - window + 1) : int64_t{0};
}

// The pool rows of keys n0 .. n0 + kKeys - 1 of the block's sequence (-1 past last_key): one
// block-table read per key and tile, shared by every chunk of K and V that the tile loads.
template <int kKeys>
__device__ __forceinline__ void FindKeyRows(const Params& p, const int32_t* table, int64_t n0, int64_t last_key,
                                            int32_t* rows) {
  for (int r = threadIdx.x; r < kKeys; r += kThreads) {
    const int64_t key = n0 + r;
    rows[r] = key <= last_key ? static_cast<int32_t>(PoolRow(p.pages, table, SlotOf(p.pages, key))) : -1;
  }
}

// Pool rows `rows` (FindKeyRows), columns col0 .. col0 + cols - 1 of this kv head, into a tile.
// Keys past last_key (row -1) are not read (they may be unwritten or not even allocated) but
// zero-filled, so that P = 0 never meets a NaN in P.V.
template <int kKeys>
__device__ __forceinline__ void LoadKeyTile(const Params& p, const __nv_bfloat16* cache, int64_t kv_head, int col0,
                                            int cols, const int32_t* rows, uint32_t tile, int stride, int swizzle) {
  const int chunks = cols / 8;
  const int64_t kv_width = p.heads / p.group * p.head_dim;
  const __nv_bfloat16* source = cache + kv_head * p.head_dim + col0;
  for (int i = threadIdx.x; i < kKeys * chunks; i += kThreads) {
    const int r = i / chunks, c = (i % chunks) * 8;
    const uint32_t destination = tile + ChunkOffset(r, c, stride, swizzle);
    const int32_t row = rows[r];
    if (row >= 0) {
      CopyAsync16(destination, source + static_cast<int64_t>(row) * kv_width + c);
    } else {
      StoreZero16(destination);
    }
  }
}

// grid: (row tiles, kv heads, output slices); 4 warps, each owning 16 query rows. Row tiles never
// straddle runs: run r (tokens runs[r] .. runs[r + 1]) has ceil(tokens * group / kRows) of them,
// and the grid is sized for the most the runs can have (blocks past the last tile exit).
template <int kOutCols, int kKeys>
__global__ void __launch_bounds__(kThreads, 2) PrefillAttentionKernel(const Params p) {
  extern __shared__ __align__(128) unsigned char shared[];
  constexpr int kKeyTiles = kKeys / 8;      // n-tiles of S per warp
  constexpr int kOutTiles = kOutCols / 8;   // n-tiles of O per warp
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int quad_row = lane / 4, quad_col = 2 * (lane % 4);  // this lane's place in an mma fragment

  __shared__ int32_t key_rows[2][kKeys];  // pool rows of the tile being loaded and the next
  // Late tiles of a run see the most keys: start them first so the short ones fill the tail.
  const int64_t tile_index = gridDim.x - 1 - blockIdx.x;
  int64_t first_tile = 0, run = -1;
  for (int64_t r = 0; r < p.num_runs; ++r) {
    const int64_t tiles = ((p.runs[r + 1] - p.runs[r]) * p.group + kRows - 1) / kRows;
    if (tile_index < first_tile + tiles) {
      run = r;
      break;
    }
    first_tile += tiles;
  }
  if (run < 0) return;  // the whole block: past the last tile
  const int64_t row0 = p.runs[run] * p.group + (tile_index - first_tile) * kRows;
  const int64_t last_row = min(row0 + kRows, p.runs[run + 1] * p.group) - 1;
  const int32_t* table = LayerTable(p.pages, p.sequences[p.runs[run]]);
  const int64_t kv_head = blockIdx.y;
  const int col0 = blockIdx.z * kOutCols;
  const int out_cols = min(kOutCols, p.head_dim - col0);

  // Padding rows past the last query borrow its position, so their statistics stay finite.
  auto position_of = [&](int64_t row) -> int64_t { return p.positions[min(row, last_row) / p.group]; };
  // Positions ascend with the row, so the block's key range is fixed by its first and last row.
  const int64_t first_key = FirstVisible(position_of(row0), p.window);
  const int64_t last_key = position_of(last_row);
  const int64_t warp_row0 = row0 + warp * kRowsPerWarp;
  const int64_t warp_min_position = position_of(warp_row0);
  const int64_t warp_max_position = position_of(warp_row0 + kRowsPerWarp - 1);
  const int64_t warp_min_first = FirstVisible(warp_min_position, p.window);
  const int64_t warp_max_first = FirstVisible(warp_max_position, p.window);
  int64_t row_position[2], row_first[2];  // this lane's rows: quad_row and quad_row + 8
  for (int half = 0; half < 2; ++half) {
    row_position[half] = position_of(warp_row0 + quad_row + 8 * half);
    row_first[half] = FirstVisible(row_position[half], p.window);
  }

  const uint32_t q_tile = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  const uint32_t k_tile = q_tile + kRows * p.qk_stride * 2;
  const uint32_t v_tile = k_tile + kKeys * p.qk_stride * 2;
  constexpr int kVSwizzle = 7;  // kOutCols is a multiple of 64

  // Q rows (f32 in global) -> bf16 tile, four values per thread and step.
  const int quarter_row = p.head_dim / 4;
  for (int i = threadIdx.x; i < kRows * quarter_row; i += kThreads) {
    const int r = i / quarter_row, c = (i % quarter_row) * 4;
    const int64_t row = row0 + r;
    float4 value = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (row <= last_row) {
      const int64_t token = row / p.group, head = kv_head * p.group + row % p.group;
      value = *reinterpret_cast<const float4*>(p.q + (token * p.heads + head) * p.head_dim + c);
    }
    const uint2 packed = make_uint2(PackBf16(value.x, value.y), PackBf16(value.z, value.w));
    const uint32_t offset = ChunkOffset(r, c, p.qk_stride, p.qk_swizzle) + (c % 8) * 2;
    *reinterpret_cast<uint2*>(shared + offset) = packed;
  }

  float o[kOutTiles][4];
  for (int nt = 0; nt < kOutTiles; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.0f, 0.0f};  // this lane's columns only; summed over the quad at the end

  // One pass over the key tiles. K of the next tile loads while this tile's softmax and P.V run;
  // V of this tile loads while Q.K^T runs.
  const int64_t key_tiles = (last_key - first_key + kKeys) / kKeys;
  FindKeyRows<kKeys>(p, table, first_key, last_key, key_rows[0]);
  __syncthreads();
  LoadKeyTile<kKeys>(p, p.cache_k, kv_head, 0, p.head_dim, key_rows[0], k_tile, p.qk_stride, p.qk_swizzle);
  CommitCopies();
  for (int64_t tile = 0; tile < key_tiles; ++tile) {
    const int64_t n0 = first_key + tile * kKeys;
    LoadKeyTile<kKeys>(p, p.cache_v, kv_head, col0, out_cols, key_rows[tile & 1], v_tile, kOutCols, kVSwizzle);
    CommitCopies();
    // The next tile's rows: its buffer was last read before the previous iteration's final barrier,
    // and the barrier below publishes it before the next K tile is loaded.
    if (tile + 1 < key_tiles) FindKeyRows<kKeys>(p, table, n0 + kKeys, last_key, key_rows[(tile + 1) & 1]);
    WaitCopies<1>();  // K of this tile
    __syncthreads();

    // A warp whose rows see none of these keys skips the tile (its P would be all zero).
    const bool visible = n0 <= warp_max_position && n0 + kKeys - 1 >= warp_min_first;
    float s[kKeyTiles][4];
    for (int nt = 0; nt < kKeyTiles; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
    if (visible) {
      for (int k0 = 0; k0 < p.head_dim; k0 += 16) {
        uint32_t a[4];
        LoadMatrixX4(q_tile + ChunkOffset(warp * kRowsPerWarp + lane % 16, k0 + (lane / 16) * 8, p.qk_stride,
                                          p.qk_swizzle),
                     a);
#pragma unroll
        for (int pair = 0; pair < kKeys / 16; ++pair) {
          // Matrices: keys +0..7 / dims +0..7, keys +0..7 / dims +8..15, then keys +8..15 likewise.
          uint32_t b[4];
          LoadMatrixX4(k_tile + ChunkOffset(pair * 16 + lane % 8 + (lane / 16) * 8, k0 + ((lane / 8) % 2) * 8,
                                            p.qk_stride, p.qk_swizzle),
                       b);
          Mma(s[2 * pair], a, b[0], b[1]);
          Mma(s[2 * pair + 1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with the K tile
    if (tile + 1 < key_tiles) {
      LoadKeyTile<kKeys>(p, p.cache_k, kv_head, 0, p.head_dim, key_rows[(tile + 1) & 1], k_tile, p.qk_stride,
                         p.qk_swizzle);
    }
    CommitCopies();  // possibly empty, so that WaitCopies<1> below always means "V has landed"

    // Online softmax in the base-2 domain; the accumulator layout gives each lane two rows.
    uint32_t probabilities[kKeys / 16][4];
    if (visible) {
      const bool masked = n0 + kKeys - 1 > warp_min_position || n0 < warp_max_first;
      for (int half = 0; half < 2; ++half) {
        float tile_max = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& score = s[nt][2 * half + e];
            const int64_t key = n0 + nt * 8 + quad_col + e;
            score = (masked && (key > row_position[half] || key < row_first[half])) ? -INFINITY
                                                                                     : score * p.scale_log2;
            tile_max = fmaxf(tile_max, score);
          }
        }
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        const float new_max = fmaxf(row_max[half], tile_max);
        // A row that has seen only masked keys keeps max -inf; exponentiate against 0 so that
        // -inf - -inf never makes a NaN (every such weight and correction is then 0).
        const float base = new_max == -INFINITY ? 0.0f : new_max;
        const float correction = exp2f(row_max[half] - base);
        row_max[half] = new_max;
        float tile_sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& score = s[nt][2 * half + e];
            score = exp2f(score - base);
            tile_sum += score;
          }
        }
        row_sum[half] = row_sum[half] * correction + tile_sum;
#pragma unroll
        for (int nt = 0; nt < kOutTiles; ++nt) {
          o[nt][2 * half] *= correction;
          o[nt][2 * half + 1] *= correction;
        }
      }
      // The accumulators of key n-tiles 2j and 2j+1 are, element for element, the A fragment of
      // the 16 keys of step j: P never leaves registers.
#pragma unroll
      for (int j = 0; j < kKeys / 16; ++j) {
        probabilities[j][0] = PackBf16(s[2 * j][0], s[2 * j][1]);
        probabilities[j][1] = PackBf16(s[2 * j][2], s[2 * j][3]);
        probabilities[j][2] = PackBf16(s[2 * j + 1][0], s[2 * j + 1][1]);
        probabilities[j][3] = PackBf16(s[2 * j + 1][2], s[2 * j + 1][3]);
      }
    }

    WaitCopies<1>();  // V of this tile
    __syncthreads();
    if (visible) {
#pragma unroll
      for (int j = 0; j < kKeys / 16; ++j) {
#pragma unroll
        for (int pair = 0; pair < kOutCols / 16; ++pair) {
          if (pair * 16 >= out_cols) break;
          // Transposed matrices: keys +0..7 / cols +0..7, keys +8..15 / cols +0..7, then cols +8..15.
          uint32_t b[4];
          LoadMatrixX4Transposed(
              v_tile + ChunkOffset(j * 16 + lane % 8 + ((lane / 8) % 2) * 8, pair * 16 + (lane / 16) * 8, kOutCols,
                                   kVSwizzle),
              b);
          Mma(o[2 * pair], probabilities[j], b[0], b[1]);
          Mma(o[2 * pair + 1], probabilities[j], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with the V tile
  }
  WaitCopies<0>();

  for (int half = 0; half < 2; ++half) {
    float sum = row_sum[half];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int64_t row = warp_row0 + quad_row + 8 * half;
    if (row > last_row) continue;
    const float inverse = 1.0f / sum;  // > 0: every row sees at least its own key
    const int64_t token = row / p.group, head = kv_head * p.group + row % p.group;
    float* destination = p.out + (token * p.heads + head) * p.head_dim + col0 + quad_col;
#pragma unroll
    for (int nt = 0; nt < kOutTiles; ++nt) {
      if (nt * 8 >= out_cols) break;
      *reinterpret_cast<float2*>(destination + nt * 8) =
          make_float2(o[nt][2 * half] * inverse, o[nt][2 * half + 1] * inverse);
    }
  }
}

template <int kOutCols, int kKeys>
cudaError_t Launch(const Params& p, int64_t tokens, int64_t kv_heads, cudaStream_t stream) {
  const auto kernel = PrefillAttentionKernel<kOutCols, kKeys>;
  const int64_t shared_bytes = (int64_t{kRows} * p.qk_stride + int64_t{kKeys} * p.qk_stride + kKeys * kOutCols) * 2;
  int device = 0, shared_limit = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  if (cudaError_t e = cudaDeviceGetAttribute(&shared_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
      e != cudaSuccess) {
    return e;
  }
  if (shared_bytes + static_cast<int64_t>(2 * kKeys * sizeof(int32_t)) > shared_limit) return cudaErrorInvalidValue;
  if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(shared_bytes));
      e != cudaSuccess) {
    return e;
  }
  const int64_t row_tiles = (tokens * p.group + kRows - 1) / kRows + p.num_runs;
  const int64_t slices = (p.head_dim + kOutCols - 1) / kOutCols;
  if (row_tiles > 0x7fffffff || kv_heads > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(kv_heads), static_cast<unsigned>(slices));
  kernel<<<grid, kThreads, shared_bytes, stream>>>(p);
  return cudaGetLastError();
}

bool Aligned(const void* pointer, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(pointer) % bytes == 0; }

}  // namespace

cudaError_t LaunchPrefillAttention(const float* q, const int32_t* positions, const int32_t* sequences,
                                   const int32_t* runs, int64_t num_runs, int64_t tokens, int64_t heads,
                                   int64_t kv_heads, int64_t head_dim, int64_t window, float scale,
                                   const __nv_bfloat16* cache_k, const __nv_bfloat16* cache_v, const KvPages& pages,
                                   float* out, cudaStream_t stream) {
  if (tokens < 0 || heads <= 0 || kv_heads <= 0 || heads % kv_heads != 0 || window < 0 || pages.capacity <= 0 ||
      pages.block_size <= 0 || num_runs < 0 || (tokens > 0 && num_runs < 1) || num_runs > tokens) {
    return cudaErrorInvalidValue;
  }
  if (head_dim < 16 || head_dim > 512 || head_dim % 16 != 0) return cudaErrorInvalidValue;
  if (!Aligned(q, 16) || !Aligned(cache_k, 16) || !Aligned(cache_v, 16) || !Aligned(out, 8)) {
    return cudaErrorInvalidValue;
  }
  if (tokens == 0) return cudaSuccess;
  Params p{};
  p.q = q;
  p.positions = positions;
  p.sequences = sequences;
  p.runs = runs;
  p.num_runs = num_runs;
  p.cache_k = cache_k;
  p.cache_v = cache_v;
  p.pages = pages;
  p.out = out;
  p.group = heads / kv_heads;
  p.heads = heads;
  p.window = window;
  p.head_dim = static_cast<int>(head_dim);
  const bool swizzled = head_dim % 64 == 0;
  p.qk_stride = static_cast<int>(swizzled ? head_dim : head_dim + 8);
  p.qk_swizzle = swizzled ? 7 : 0;
  p.scale_log2 = scale * 1.4426950408889634f;  // exp(x) = exp2(x * log2(e))
  // The accumulator of one block covers at most 256 output columns; wider heads take 32-key tiles
  // so that Q, K and V of two blocks still fit one multiprocessor's shared memory.
  if (head_dim > 256) return Launch<256, 32>(p, tokens, kv_heads, stream);
  if (head_dim > 128) return Launch<256, 64>(p, tokens, kv_heads, stream);
  if (head_dim > 64) return Launch<128, 64>(p, tokens, kv_heads, stream);
  return Launch<64, 64>(p, tokens, kv_heads, stream);
}

}  // namespace kiln::cuda
