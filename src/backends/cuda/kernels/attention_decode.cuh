// Decode attention, split over the context (flash-decoding): a step of one query row per
// sequence has too few heads to fill the GPU, so each (token, KV head) is split into up to
// kDecodeAttentionMaxSplits ranges of positions, each range a block; a second kernel merges the
// blocks' partial softmax states. The query heads that share a KV head live in one block, so
// every key and value row is read from memory once per token (grouped-query attention: 16 heads
// over one 512-wide KV head in Gemma 4 12B's full layers). Tokens are independent: a batch of
// sequences at different lengths runs in one launch, each token over its own sequence's blocks
// (KvPages) up to its own position.
//
// Launch sizes depend only on the shapes and the token count (never on a position, which lives
// in device memory): the grid is sized for the longest span the cache holds and splits past a
// token's real length exit at once, so the launch can be captured in a CUDA graph and replayed at
// every position.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

// The scratch holds min(max_tokens, kDecodeAttentionScratchTokens) * kDecodeAttentionMaxSplits
// partial states per head; a step of more tokens splits each one less.
inline constexpr int64_t kDecodeAttentionScratchTokens = 4;
inline constexpr int64_t kDecodeAttentionMaxSplits = 512;
// Steps of up to this many tokens of one sequence (a speculative verify, a short prefill chunk)
// also take this kernel: the prefill kernel's query tiles would hand the whole context to a few
// blocks per KV head, and the split here keeps every SM busy while each token reads its keys
// (from L2 after the first: the step's tokens read the same positions).
inline constexpr int64_t kDecodeAttentionMaxRunTokens = 16;

// `max_tokens`: the bound the step (and its scratch) was planned at.
bool DecodeAttentionSupports(int64_t tokens, int64_t max_tokens, int64_t heads, int64_t kv_heads, int64_t head_dim);
// Scratch for the partial states of a step of up to `max_tokens` rows.
int64_t DecodeAttentionScratchBytes(int64_t max_tokens, int64_t heads, int64_t head_dim);
// q [T, heads*head_dim] f32; K/V pool rows of `cache_type` (f32 or bf16) addressed by `pages`;
// semantics as LaunchAttention. `sm_count` sizes the split.
cudaError_t LaunchDecodeAttention(const float* q, const int32_t* positions, const int32_t* sequences, int64_t tokens,
                                  int64_t max_tokens, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t window,
                                  float scale, const void* cache_k, const void* cache_v, WeightType cache_type,
                                  const KvPages& pages, float* scratch, float* out, int sm_count, cudaStream_t stream);

}  // namespace kiln::cuda
