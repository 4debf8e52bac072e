// Prefill attention on tensor cores: the fast path next to the reference LaunchAttention
// (kernels.cuh), with the same semantics and a bf16 KV cache.
//
//   // q, out: (tokens, heads * head_dim) f32; cache_k, cache_v: pool rows (kv_heads * head_dim
//   // bf16 each) addressed through `pages` (kernels.cuh)
//   cudaError_t e = LaunchPrefillAttention(q, positions, sequences, runs, num_runs, tokens, heads,
//                                          kv_heads, head_dim, window, scale, cache_k, cache_v, pages,
//                                          out, stream);
//   if (e == cudaErrorInvalidValue) { /* shape it does not handle: use LaunchAttention */ }
//
// Contract (as AttentionKernel in kernels.cu):
//   * Row t of q is the query at absolute position positions[t] of sequence sequences[t]
//     (device arrays of `tokens` int32). The tokens come in runs (a prefill chunk of one
//     sequence each): `runs` is a device array of num_runs + 1 token offsets, runs[0] = 0,
//     runs[num_runs] = tokens; within a run every token has the same sequence and the positions
//     are consecutive and ascending. The first may be > 0: earlier chunks are already in the cache.
//   * The key/value of position p of a sequence sit in its pool row (KvPages), and every
//     position <= the run's last that a query can see has been written. Rows the queries cannot
//     see are never read (they may hold garbage or NaN, or belong to no block).
//   * Query t attends to positions max(0, p_t - window + 1) .. p_t (window 0: all of 0 .. p_t).
//   * Query head h reads kv head h / (heads / kv_heads) (grouped-query attention).
//   * out[t, h] = softmax_j(q[t, h] . k_j * scale) . v_j; no softcap.
//
// Precision: Q is rounded to bf16, Q.K^T and P.V run as bf16 x bf16 -> f32 on tensor cores
// (mma.sync m16n8k16), the softmax statistics are f32 and P is rounded to bf16 before P.V. Expect
// about 1e-3 absolute difference from the f32 reference on unit-scale inputs.
//
// Algorithm (flash attention, one pass over the keys with an online softmax). The query rows of
// one kv head are the (token, head-in-group) pairs in token-major order, so the query heads that
// share a kv head sit in the same block and every K/V tile is loaded once for all of them. A block
// takes up to 64 such rows (16 per warp) of one run and walks the key range its rows can see in tiles of 64 keys
// (32 when head_dim > 256), staged in shared memory as bf16 with cp.async; tiles wholly outside
// the window are never visited, and only the tiles that cross a row's diagonal or window edge
// are masked. The output columns are split into slices of at most 256 (head_dim 512: two blocks
// per row tile, each recomputing Q.K^T) so the f32 accumulator fits in registers.
//
// Supports: head_dim a multiple of 16 in [16, 512], any heads / kv_heads ratio, any token count,
// any capacity and block size. Returns cudaErrorInvalidValue (and launches nothing) for other shapes, for
// heads not a multiple of kv_heads, or for q / cache pointers not 16-byte aligned and out not
// 8-byte aligned; the caller then falls back to LaunchAttention. tokens == 0 is a no-op.
// Launch errors come back as the cudaError_t of the launch. Thread-safe; no allocation.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

cudaError_t LaunchPrefillAttention(const float* q, const int32_t* positions, const int32_t* sequences,
                                   const int32_t* runs, int64_t num_runs, int64_t tokens, int64_t heads,
                                   int64_t kv_heads, int64_t head_dim, int64_t window, float scale,
                                   const __nv_bfloat16* cache_k, const __nv_bfloat16* cache_v, const KvPages& pages,
                                   float* out, cudaStream_t stream);

}  // namespace kiln::cuda
