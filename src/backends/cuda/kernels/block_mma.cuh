// The linear of a few dozen x rows over Q4_0, Q8_0, Q4_K or Q6_K weights on int8 tensor cores:
// batched decode of 9 to 64 sequences, speculative verify steps, short prompts.
//
// Why: past kBlockGemvMaxRows the GEMV's dp4a arithmetic grows with the rows and stops being a
// memory stream, and the general path (block_linear.h) dequantizes the whole weight to bf16 slabs
// for cuBLASLt: 2 bytes written and read back per weight whatever the rows, several times the
// 0.56 bytes a Q4_0 weight streams. Here the weights go straight from their placed blocks into
// mma.sync m16n8k32 s8 fragments (a Q4_0 block's 16 bytes are exactly the 32 k values of one
// fragment column), x is quantized to int8 per 32-element block once (as the int8 GEMV and
// llama.cpp quantize activations), and each 32-block's integer product is scaled in f32:
//   Q4_0: w = d_w (v - 8)             sum = d_w d_x sum((v - 8) q)
//   Q8_0: w = d_w v                   sum = d_w d_x sum(v q)
//   Q4_K: w = a v - b per sub-block  sum = a d_x sum(v q) - b d_x sum(q)
//   Q6_K: w = d sc (v - 32), sc per 16 elements: two k16 products a 32-block, each scaled
// The integer sums are exact; the error is x's rounding, at most d_x / 2 an element, as the int8
// GEMV's.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

// The most x rows the linear sends to this kernel; more go to bf16 slabs and cuBLASLt, which
// reach the tensor cores' peak at prefill sizes. Measured on an H100: bench/RESULTS.md.
inline constexpr int64_t kBlockMmaMaxRows = 64;

// True for Q4_0, Q8_0, Q4_K and Q6_K with rows of whole blocks (any row count; the linear routes only
// kBlockGemvMaxRows < rows <= kBlockMmaMaxRows here).
bool BlockMmaSupports(WeightType type, int64_t k);

// Scratch of LaunchBlockMma for `rows` x rows: x in int8 and its per-block scales, padded to whole
// token tiles.
int64_t BlockMmaScratchBytes(int64_t rows, int64_t k);

// y[rows, n] = x[rows, k] . w[n, k]^T, x and y f32, `w` a placed block weight; `scratch` holds
// BlockMmaScratchBytes(rows, k) bytes, 256-byte aligned. cudaErrorInvalidValue where
// !BlockMmaSupports.
cudaError_t LaunchBlockMma(const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y, void* scratch,
                           cudaStream_t stream);

}  // namespace kiln::cuda
