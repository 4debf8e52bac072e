// A linear over a block-format weight, whatever its row count: y[rows, n] = x[rows, k] . w[n, k]^T.
//
//   rows <= kBlockGemvMaxRows (decode): the block GEMV streams the placed weight once,
//     dequantizing in registers (kernels/block_gemv.cuh); f32 products and accumulation.
//   more rows (prefill, large decode batches): x is rounded to bf16 once, then the weight is
//     dequantized to bf16 a slab of rows at a time (at most slab_bytes) and each slab runs through
//     cuBLASLt on tensor cores, writing its columns of y. The slab bounds the scratch whatever the
//     weight's size (a 262144-row LM head needs 64 MiB, not 2 GB); each slab's dequantization
//     writes 2 bytes per weight and the GEMM reads them back, small next to the GEMM's work at
//     prefill sizes.
//
// The scratch (the plan's, ScratchBytes of the linear) holds x in bf16 then the slab, each 256-byte
// aligned: BlockLinearScratchBytes bytes.
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
// Scratch of a linear of `rows` rows: 0 where the GEMV takes it.
int64_t BlockLinearScratchBytes(WeightType type, int64_t rows, int64_t n, int64_t k, int64_t slab_bytes = kDequantSlabBytes);

// Runs the linear on `stream`; `scratch` holds BlockLinearScratchBytes(type, rows, n, k,
// slab_bytes) bytes (unused by the GEMV). x f32 [rows, k], y f32 [rows, n]; `w` the placed weight.
Status RunBlockLinear(CublasLtGemm& gemm, const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y,
                      void* scratch, cudaStream_t stream, int64_t slab_bytes = kDequantSlabBytes);

}  // namespace kiln::cuda
