// Decode attention, split over the context (flash-decoding): a step of one (or a few) query rows
// has too few heads to fill the GPU, so each (token, KV head) is split into up to
// kDecodeAttentionMaxSplits ranges of positions, each range a block; a second kernel merges the
// blocks' partial softmax states. The query heads that share a KV head live in one block, so
// every key and value row is read from memory once (grouped-query attention: 16 heads over one
// 512-wide KV head in Gemma 4 12B's full layers).
//
// Launch sizes depend only on the shapes (never on the position, which lives in device memory),
// so the launch can be captured in a CUDA graph and replayed at every position.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

inline constexpr int64_t kDecodeAttentionMaxTokens = 4;
inline constexpr int64_t kDecodeAttentionMaxSplits = 512;

bool DecodeAttentionSupports(int64_t tokens, int64_t heads, int64_t kv_heads, int64_t head_dim);
// Scratch for the partial states of a step of up to `max_tokens` rows.
int64_t DecodeAttentionScratchBytes(int64_t max_tokens, int64_t heads, int64_t head_dim);
// q [T, heads*head_dim] f32; cache rows [capacity, kv_heads*head_dim] of `cache_type` (f32 or
// bf16); semantics as LaunchAttention. `sm_count` sizes the split.
cudaError_t LaunchDecodeAttention(const float* q, const int32_t* positions, int64_t tokens, int64_t heads,
                                  int64_t kv_heads, int64_t head_dim, int64_t window, float scale, const void* cache_k,
                                  const void* cache_v, WeightType cache_type, int64_t capacity, bool ring,
                                  float* scratch, float* out, int sm_count, cudaStream_t stream);

}  // namespace kiln::cuda
