// The decode-time linear for block-format weights (block_formats.cuh): y[rows, n] = x[rows, k] .
// w[n, k]^T with the weight dequantized in registers, f32 products and f32 accumulation.
//
// A decode step reads every weight byte once, so the kernel is a memory stream, as the bf16 GEMV:
// warps take a few weight rows each, their lanes stride over the rows' 16-byte units of quants
// (coalesced 16-byte loads, several in flight per lane), expand each to floats (a byte permute and
// a subtraction per element, no integer-to-float conversions) and multiply them with the x rows in
// f32. Each group of 16 elements is summed and then scaled by its block scale (Q4_K, whose minimum
// makes that impossible, dequantizes each element). Lane sums meet by shuffles. x comes from
// shared memory, staged by the thread block a tile at a time, for several x rows and for the
// 32-element-unit formats (Q4_0, Q4_1, Q5_0, Q5_1); for one x row of the other formats straight
// through L1 (block_gemv.cu says why). Rows beyond kBlockGemvMaxRows go to the dequantize +
// tensor-core path (block_linear.h).
//
// The MoE experts' kernels at decode stream the chosen experts' rows through the same warp code
// (LaunchBlockMoeExperts), after LaunchMoeDecode's routing kernel.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/gemv.cuh"
#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

inline constexpr int64_t kBlockGemvMaxRows = 8;

// True for a block format, 1 <= rows <= kBlockGemvMaxRows and rows of whole blocks.
bool BlockGemvSupports(WeightType type, int64_t rows, int64_t k);

// How the products are formed. kF32: every weight expanded to f32 and multiplied with f32 x, the
// reference's products. kInt8, for Q4_0, Q8_0 or Q4_K, one x row of any width or 2 to 8 rows that
// fit in shared memory (BlockGemvInt8Supports: 32,768 elements at two, 8,192 at eight; other
// shapes take kF32): x
// quantized to int8 per 32-element block, as llama.cpp quantizes activations, and integer dot
// products (block_gemv_int8.cu): each element of x rounded by at most 1/254 of its block's largest
// magnitude, for several times fewer instructions a weight.
enum class BlockGemvMath { kF32, kInt8 };

bool BlockGemvInt8Supports(WeightType type, int64_t rows, int64_t k);

// count (1..kGemvMaxTargets) placed weights w[i] of n[i] rows read the same x: y[i][rows, n[i]] =
// x . w[i]^T. With `up` (count 1): y = gelu_tanh(x . w[0]^T) * (x . up^T), the feed-forward's gate
// and up in one pass. x and y are f32, x 16-byte aligned.
cudaError_t LaunchBlockGemv(const float* x, const void* const* w, float* const* y, const int64_t* n, int count, const void* up,
                            WeightType type, int64_t rows, int64_t k, cudaStream_t stream, BlockGemvMath math = BlockGemvMath::kInt8);

// The kInt8 kernels alone (block_gemv_int8.cu); cudaErrorInvalidValue where !BlockGemvInt8Supports.
cudaError_t LaunchBlockGemvInt8(const float* x, const void* const* w, float* const* y, const int64_t* n, int count, const void* up,
                                WeightType type, int64_t rows, int64_t k, cudaStream_t stream);

// The experts of a routed MoE layer (slots filled by the routing kernel): per token t and chosen
// expert i, act = gelu(gate . h_t) * (up . h_t) from gate_up [experts, 2 * width, hidden], then
// out_t = sum_i weight_i * (down . act) from down [experts, hidden, width]; both block-format.
cudaError_t LaunchBlockMoeExperts(const float* h, const void* gate_up, const void* down, WeightType type, int64_t tokens, int64_t hidden,
                                  int64_t experts, int64_t width, int64_t top_k, const MoeSlots& slots, float* out, cudaStream_t stream);

}  // namespace kiln::cuda
