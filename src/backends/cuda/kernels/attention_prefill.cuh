// Prefill attention on tensor cores: the fast path next to the reference LaunchAttention
// (kernels.cuh), with the same semantics and a bf16 KV cache.
//
//   // q, out: (tokens, heads * head_dim) f32; cache_k, cache_v: (capacity, kv_heads * head_dim) bf16
//   cudaError_t e = LaunchPrefillAttention(q, positions, tokens, heads, kv_heads, head_dim, window,
//                                          scale, cache_k, cache_v, capacity, ring, out, stream);
//   if (e == cudaErrorInvalidValue) { /* shape it does not handle: use LaunchAttention */ }
//
// Contract (as AttentionKernel in kernels.cu):
//   * Row t of q is the query at absolute position positions[t]; positions is a device array of
//     `tokens` int32, consecutive and ascending within the call. The first may be > 0: earlier
//     chunks are already in the cache.
//   * The key/value of absolute position p sit in cache row (ring ? p % capacity : p), and every
//     position <= positions[tokens - 1] that a query can see has been written. Rows the queries
//     cannot see are never read (they may hold garbage or NaN).
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
// takes 64 such rows (16 per warp) and walks the key range its rows can see in tiles of 64 keys
// (32 when head_dim > 256), staged in shared memory as bf16 with cp.async; tiles wholly outside
// the window are never visited, and only the tiles that cross a row's diagonal or window edge
// are masked. The output columns are split into slices of at most 256 (head_dim 512: two blocks
// per row tile, each recomputing Q.K^T) so the f32 accumulator fits in registers.
//
// Supports: head_dim a multiple of 16 in [16, 512], any heads / kv_heads ratio, any token count,
// any capacity. Returns cudaErrorInvalidValue (and launches nothing) for other shapes, for
// heads not a multiple of kv_heads, or for q / cache pointers not 16-byte aligned and out not
// 8-byte aligned; the caller then falls back to LaunchAttention. tokens == 0 is a no-op.
// Launch errors come back as the cudaError_t of the launch. Thread-safe; no allocation.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace kiln::cuda {

cudaError_t LaunchPrefillAttention(const float* q, const int32_t* positions, int64_t tokens, int64_t heads,
                                   int64_t kv_heads, int64_t head_dim, int64_t window, float scale,
                                   const __nv_bfloat16* cache_k, const __nv_bfloat16* cache_v, int64_t capacity,
                                   bool ring, float* out, cudaStream_t stream);

}  // namespace kiln::cuda
