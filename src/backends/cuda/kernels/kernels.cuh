// CUDA kernel launchers of the reference CUDA backend: raw pointers, sizes and a stream in,
// cudaError_t out; they know nothing of graphs or programs (shapes were checked at compile
// time). Activations are f32; weights f32, bf16 or f16 (WeightType); accumulation in f32.
// These kernels are the correctness baseline (one warp per dot product, online-softmax
// attention); the fast paths (cuBLASLt, tensor-core attention, fused ops) come next to them.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kiln::cuda {

// How a weight is stored on the device. The element types are read where they are; the block
// formats (core/quant.h) are placed in kiln's split layout (block_formats.cuh) and only the
// linear, embedding and MoE-expert kernels take them.
enum class WeightType : int {
  kF32 = 0, kBF16 = 1, kF16 = 2, kQ8_0 = 3, kQ4_0 = 4, kQ4_K = 5, kQ6_K = 6, kF8E4M3 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ4_1 = 10, kQ5_K = 11
};
inline constexpr bool IsBlockWeight(WeightType type) { return static_cast<int>(type) >= static_cast<int>(WeightType::kQ8_0); }

// out[t, :] = table[ids[t], :] * scale (row 0 for an id outside the table); block-format tables
// go to LaunchEmbedBlocks (block_weights.cuh).
cudaError_t LaunchEmbed(const int32_t* ids, const void* table, WeightType type, int64_t table_rows, int64_t tokens,
                        int64_t width, float scale, float* out, cudaStream_t stream);
// groups of `group` values; weight may be null.
cudaError_t LaunchRmsNorm(const float* x, const void* weight, WeightType type, int64_t groups, int64_t group, float eps,
                          float* out, cudaStream_t stream);
// y[rows, n] = x[rows, k] . w[n, k]
cudaError_t LaunchLinear(const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y,
                         cudaStream_t stream);
cudaError_t LaunchRope(const float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
                       int64_t rotary, float theta, float* out, cudaStream_t stream);
// One layer's K and V in the KV block pool, as every kernel that touches the cache addresses it.
// The pool holds rows [blocks * block_size, kv_width] of f32 or bf16 (cache_type). Token t of a
// step belongs to sequence sequences[t], whose block table row is block_tables + sequences[t] *
// table_stride; this layer's group starts at table_offset in it. Position p of a sequence lives
// in slot s = ring ? p % capacity : p, pool row table[table_offset + s / block_size] * block_size
// + s % block_size. Every token reads and writes only its own sequence's blocks.
struct KvPages {
  const int32_t* block_tables = nullptr;  // device memory, S rows of table_stride block ids
  int64_t table_stride = 0;
  int64_t table_offset = 0;
  int32_t block_size = 1;
  int64_t capacity = 0;  // slots one sequence holds in this layer
  bool ring = false;
};

cudaError_t LaunchKvAppend(const float* k, const float* v, const int32_t* positions, const int32_t* sequences,
                           int64_t tokens, int64_t width, const KvPages& pages, void* cache_k, void* cache_v,
                           WeightType cache_type, cudaStream_t stream);
// One warp per (token, head), keys one at a time: the reference every faster attention is
// tested against. Each token attends over its own sequence's cache at its own position.
cudaError_t LaunchAttention(const float* q, const int32_t* positions, const int32_t* sequences, int64_t tokens,
                            int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t window, float scale,
                            const void* cache_k, const void* cache_v, WeightType cache_type, const KvPages& pages,
                            float* out, cudaStream_t stream);
// out[r, :] = x[rows[r], :] for r < count: the rows whose logits a step returns.
cudaError_t LaunchGatherRows(const float* x, const int32_t* rows, int64_t count, int64_t columns, float* out,
                             cudaStream_t stream);
enum class ElementwiseOp : int { kAdd = 0, kMul = 1, kScale = 2, kGeluMul = 3, kSoftcap = 4 };
cudaError_t LaunchElementwise(ElementwiseOp op, const float* a, const float* b, float scalar, int64_t count, float* out,
                              cudaStream_t stream);
// out = x * weight[0]
cudaError_t LaunchScaleByWeight(const float* x, const void* weight, WeightType type, int64_t count, float* out,
                                cudaStream_t stream);
cudaError_t LaunchSliceColumns(const float* x, int64_t rows, int64_t columns, int64_t offset, int64_t width, float* out,
                               cudaStream_t stream);
// out[r, :] = (a[r, :], b[r, :])
cudaError_t LaunchConcatColumns(const float* a, const float* b, int64_t rows, int64_t a_columns, int64_t b_columns, float* out,
                                cudaStream_t stream);
// The sparse centroid head (OpKind::kCentroidHead: out[rows, vocab] from x[rows, hidden], the
// head [vocab, hidden] in any weight type, centroid scores [rows, centroids] and the token
// ordering) for up to kMaxHeadCentroids centroids (their scores sit in shared memory), top_k <=
// kMaxHeadTopK and hidden <= kMaxHeadHidden (x in shared memory); a block-format head needs rows
// of whole blocks. `scratch`: CentroidHeadScratchBytes(rows, top_k, top_k * vocab / centroids).
inline constexpr int64_t kMaxHeadCentroids = 8192;
inline constexpr int64_t kMaxHeadTopK = 256;
inline constexpr int64_t kMaxHeadHidden = 8192;
bool CentroidHeadSupports(WeightType head_type, int64_t hidden, int64_t centroids, int64_t top_k);
int64_t CentroidHeadScratchBytes(int64_t rows, int64_t top_k, int64_t kept);
cudaError_t LaunchCentroidHead(const float* x, const void* head, WeightType head_type, int64_t vocab, int64_t hidden, const float* scores,
                               const int32_t* ordering, int64_t rows, int64_t centroids, int64_t top_k, void* scratch, float* out,
                               cudaStream_t stream);
// scratch: (E + 3M + H) floats + E ints per token row processed (one block per token).
cudaError_t LaunchMoe(const float* x, const float* h, const void* router, const void* router_scale,
                      const void* expert_scale, const void* gate_up, const void* down, WeightType type, int64_t tokens,
                      int64_t hidden, int64_t experts, int64_t width, int64_t top_k, float eps, float* scratch, float* out,
                      cudaStream_t stream);

// out[i] = x[i] rounded to `type` (bf16 or f16): the activations fed to tensor-core GEMMs.
cudaError_t LaunchConvert(const float* x, int64_t count, WeightType type, void* out, cudaStream_t stream);
// slot->id = *token, slot->logprob = *logprob: a sampled token handed to the host through mapped
// (zero-copy) pinned memory, so one tiny kernel replaces two copies per decode step.
struct SampledSlot {
  int32_t id;
  float logprob;
};
cudaError_t LaunchRecordSample(const int32_t* token, const float* logprob, SampledSlot* slot, cudaStream_t stream);
// Fills `count` elements of an element `type` with reproducible pseudo-random values uniform in
// [center - spread, center + spread] (benchmark weights created on the device). Block formats:
// LaunchRandomBlocks (block_weights.cuh).
cudaError_t LaunchRandomFill(void* out, WeightType type, int64_t count, uint64_t seed, float center, float spread,
                             cudaStream_t stream);

}  // namespace kiln::cuda
