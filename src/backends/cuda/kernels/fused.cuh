// Fused kernels for the op chains every Gemma 4 layer repeats. A decode step is ~20 small
// launches a layer; each costs a few microseconds however little it does, so at batch 1 the chains
// below are one kernel each (the session finds them in the graph, cuda_backend.cpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

// The end of an attention or feed-forward block and the start of the next:
//   x_out = (residual + rmsnorm(branch) * branch_weight) * scalar[0]      (scalar may be null)
//   normed = rmsnorm(x_out) * next_weight                                   (when normed is not null)
// Rows of `width` (at most 8192); one block per row. Weights are of `type`; scalar too.
cudaError_t LaunchResidualNorm(const float* branch, const void* branch_weight, const float* residual, const void* scalar,
                               const void* next_weight, WeightType type, int64_t rows, int64_t width, float eps,
                               float* x_out, float* normed, cudaStream_t stream);

// Per head: rmsnorm over head_dim (times weight), then rotate-half RoPE at the row's position.
cudaError_t LaunchHeadNormRope(const float* x, const void* weight, WeightType type, const int32_t* positions, int64_t tokens,
                               int64_t heads, int64_t head_dim, int64_t rotary, float theta, float eps, float* out,
                               cudaStream_t stream);

// K and V of a layer straight into its cache: K normed (times k_weight) and rotated, V normed
// without a weight, both written at the row's pool row (its sequence's block, KvPages; cache
// elements of cache_type).
cudaError_t LaunchKvNormRopeAppend(const float* k, const float* v, const void* k_weight, WeightType type,
                                   const int32_t* positions, const int32_t* sequences, int64_t tokens, int64_t kv_heads,
                                   int64_t head_dim, int64_t rotary, float theta, float eps, const KvPages& pages,
                                   void* cache_k, void* cache_v, WeightType cache_type, cudaStream_t stream);

}  // namespace kiln::cuda
