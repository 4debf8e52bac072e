// Block-format weights outside the GEMV: placing them (GGUF blocks -> the split layout of
// block_formats.cuh, or pseudo-random valid blocks for benchmarks), dequantizing rows to bf16 for
// the tensor-core GEMM of prefill, and the embedding gather. Raw pointers, sizes and a stream in,
// cudaError_t out.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

// Rewrites `rows` rows of GGUF blocks (`raw`, device memory, rows * k / block_elements blocks in
// file order) as rows [first_row, first_row + rows) of the placed weight at `placed`, which holds
// `total_rows` rows of k elements. Weights larger than a staging buffer are placed in slices of
// rows this way.
cudaError_t LaunchRepackBlocks(const void* raw, WeightType type, int64_t first_row, int64_t rows, int64_t total_rows, int64_t k,
                               void* placed, cudaStream_t stream);

// Fills a placed weight of rows x k with reproducible pseudo-random valid blocks whose
// dequantized values are centred near 0 with magnitudes up to about `spread` (random quants, small
// positive scales; F8 never draws its NaN codes).
cudaError_t LaunchRandomBlocks(void* placed, WeightType type, int64_t rows, int64_t k, uint64_t seed, float spread, cudaStream_t stream);

// out[r, :] = row first_row + r of the placed weight (total_rows x k), dequantized exactly as
// core/quant.cpp's DequantizeRow and rounded to bf16, for r < rows.
cudaError_t LaunchDequantizeBlocks(const void* placed, WeightType type, int64_t total_rows, int64_t k, int64_t first_row, int64_t rows,
                                   void* out_bf16, cudaStream_t stream);

// out[t, :] = row ids[t] of the placed table (table_rows x width) times `scale`, in f32, bit-exact
// with DequantizeRow * scale; an id outside the table reads row 0 (as LaunchEmbed).
cudaError_t LaunchEmbedBlocks(const int32_t* ids, const void* table, WeightType type, int64_t table_rows, int64_t tokens, int64_t width,
                              float scale, float* out, cudaStream_t stream);

}  // namespace kiln::cuda
