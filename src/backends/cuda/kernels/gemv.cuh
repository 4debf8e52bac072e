// The decode-time linear: y[rows, n] = x[rows, k] . w[n, k]^T for a handful of rows (the decode
// step has one). Batch-1 decode reads every weight once and does two FLOPs per weight, so the
// kernel is a memory stream: one warp per weight row, 16-byte loads with several in flight per
// lane, the rows of x (f32, a few KiB) served from L1. Used where it beats cuBLASLt: rows <= 4.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

inline constexpr int64_t kGemvMaxRows = 4;
inline constexpr int kGemvMaxTargets = 3;

// True when the fast path takes this shape: rows <= kGemvMaxRows and rows of w 16-byte aligned
// for bf16/f16/f32; for block formats the block GEMV's bounds (rows <= kBlockGemvMaxRows, whole
// blocks; block_gemv.cuh), which every launcher below then dispatches to.
bool GemvSupports(WeightType type, int64_t rows, int64_t k);
cudaError_t LaunchGemv(const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y,
                       cudaStream_t stream);
// Several matrices that read the same x in one launch (the q, k and v projections):
// y[i][rows, n[i]] = x . w[i]^T for i < count <= kGemvMaxTargets.
cudaError_t LaunchGemvMulti(const float* x, const void* const* w, float* const* y, const int64_t* n, int count,
                            WeightType type, int64_t rows, int64_t k, cudaStream_t stream);
// gate and up in one pass for the feed-forward: y = gelu_tanh(x . wg^T) * (x . wu^T), [rows, n].
cudaError_t LaunchGemvGeluMul(const float* x, const void* w_gate, const void* w_up, WeightType type, int64_t rows,
                              int64_t n, int64_t k, float* y, cudaStream_t stream);

// MoE at decode (rows <= 4): a kernel routes each token (the router's norm and projection, top-k,
// weights, as LaunchMoe in kernels.cuh), then the chosen experts' gate/up rows and down rows are
// streamed like the GEMV: a 128-expert layer reads 8 experts' weights, not all of them.
// The router (and its scales) is f32, bf16 or f16; the experts are of the router's type or a
// block format (block_gemv.cuh). Block-format experts take any number of tokens, run
// kGemvMaxRows at a time through the same scratch (they have no other kernel).
struct MoeSlots {
  float* act = nullptr;     // [tokens, top_k, width]
  float* weight = nullptr;  // [tokens, top_k]
  int* chosen = nullptr;    // [tokens, top_k]
};
bool MoeDecodeSupports(WeightType router_type, WeightType expert_type, int64_t tokens, int64_t hidden, int64_t experts, int64_t width,
                       int64_t top_k);
int64_t MoeDecodeScratchBytes(int64_t tokens, int64_t width, int64_t top_k);
cudaError_t LaunchMoeDecode(const float* x, const float* h, const void* router, const void* router_scale,
                            const void* expert_scale, const void* gate_up, const void* down, WeightType router_type,
                            WeightType expert_type, int64_t tokens, int64_t hidden, int64_t experts, int64_t width, int64_t top_k,
                            float eps, void* scratch, float* out, cudaStream_t stream);

}  // namespace kiln::cuda
