// A linear over a block-format weight, whatever its row count: y[rows, n] = x[rows, k] . w[n, k]^T.
//
//   rows <= kBlockGemvMaxRows (decode): the block GEMV streams the placed weight once,
//     dequantizing in registers (kernels/block_gemv.cuh); f32 products and accumulation.
//   up to kBlockMmaMaxRows of Q4_0, Q8_0 and Q4_K (batched decode, verify steps): x quantized to
//     int8 once and the placed blocks multiplied on int8 tensor cores (kernels/block_mma.cuh),
//     the weight still read once.
//   more rows (prefill) and the other formats: x is rounded to bf16 once, then the weight is
//     dequantized to bf16 a slab of rows at a time (at most slab_bytes) and each slab runs through
//     cuBLASLt on tensor cores, writing its columns of y. The slab bounds the scratch whatever the
//     weight's size (a 262144-row LM head needs 64 MiB, not 2 GB); each slab's dequantization
//     writes 2 bytes per weight and the GEMM reads them back, small next to the GEMM's work at
//     prefill sizes.
//
// The scratch (the plan's, ScratchBytes of the linear) holds x in bf16 then the slab, each 256-byte
// aligned, or the int8 kernel's x: BlockLinearScratchBytes bytes, enough for any fewer rows too
// (a step may run fewer rows than planned, down another path).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/kernels/kernels.cuh"
#include "core/status.h"

namespace kiln::cuda {

inline constexpr int64_t kDequantSlabBytes = int64_t{64} << 20;

// Weight rows dequantized per cuBLASLt call: as many as fit in slab_bytes rounded down to a
// multiple of 64, at least 64 (each slab's columns of y start 256-byte aligned), at most n.
int64_t DequantSlabRows(int64_t n, int64_t k, int64_t slab_bytes = kDequantSlabBytes);
// Which path a linear of more than kBlockGemvMaxRows rows takes: kAuto as above; kMma and kSlabs
// force one (tests and benchmarks compare them; kMma needs BlockMmaSupports).
enum class BlockLinearPath { kAuto, kMma, kSlabs };

// Scratch of a linear of `rows` rows down `path`: 0 where the GEMV takes it.
int64_t BlockLinearScratchBytes(WeightType type, int64_t rows, int64_t n, int64_t k, int64_t slab_bytes = kDequantSlabBytes,
                                BlockLinearPath path = BlockLinearPath::kAuto);

// Runs the linear on `stream`; `scratch` holds BlockLinearScratchBytes(type, rows, n, k,
// slab_bytes, path) bytes (unused by the GEMV). x f32 [rows, k], y f32 [rows, n]; `w` the placed weight.
Status RunBlockLinear(CublasLtGemm& gemm, const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y,
                      void* scratch, cudaStream_t stream, int64_t slab_bytes = kDequantSlabBytes,
                      BlockLinearPath path = BlockLinearPath::kAuto);

}  // namespace kiln::cuda
