// Dot products of f32 activations with weights in a block format (core/quant.h): the inner loop
// of linear and MoE when a weight is q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k or f8_e4m3,
// and no int8 kernel (quant_int8.h, reached through QuantDotKernels::int8) takes it.
//
// One call covers `rows` activation rows against `count` weight rows:
//   out[r * out_stride + j] = sum_i x[r * x_stride + i] * W_j[i]      r < rows, j < count
// where W_j = DequantizeRow(dtype, w + j * w_row_bytes, k) and k is whole blocks.
//
// How the work is shaped:
//   rows == 1 (decode): the weight rows stream side by side, four at a time, each block read
//     once, dequantized in registers and multiplied into the one activation row. Decode reads
//     every weight once per token, so this is the loop the bandwidth floor is about.
//   rows > 1 (prefill, batched decode): each weight row is dequantized once per group of up to
//     kMaxRows activation rows and multiplied into all of them.
// Exact tables dequantize to exactly the reference's f32 values (the same products, in the same
// order) and accumulate in f32, so they differ from "DequantizeRow, then dot" only in summation
// order (q4_k, q5_k: also the rounding of d*sc*q - dmin*m, and q4_1, q5_1 that of d*q + m, each
// fused into one multiply-add). Tables with
// exact = false (dot.h) may round activations; quant_kernel_test.cpp states each table's bound.
#pragma once

#include <cstdint>

#include "backends/cpu/simd/quant_int8.h"
#include "core/dtype.h"

namespace kiln::cpu {

using QuantDotFn = void (*)(const float* x, int64_t x_stride, int64_t rows, const void* w, int64_t w_row_bytes,
                            int64_t count, int64_t k, float* out, int64_t out_stride);

// One function per block format; every member is set in every table.
struct QuantDotKernels {
  QuantDotFn q8_0 = nullptr;
  QuantDotFn q4_0 = nullptr;
  QuantDotFn q4_k = nullptr;
  QuantDotFn q6_k = nullptr;
  QuantDotFn f8_e4m3 = nullptr;
  QuantDotFn q5_0 = nullptr;
  QuantDotFn q5_1 = nullptr;
  QuantDotFn q4_1 = nullptr;
  QuantDotFn q5_k = nullptr;
  // The int8-activation kernels (quant_int8.h) for this CPU, or nullptr (the generic table, and
  // tables with them switched off: dot.h SelectDotKernels). Linear and MoE take them for the
  // formats they cover whenever the op has scratch for the rounded activations.
  const Int8DotKernels* int8 = nullptr;
  // The kernel for `dtype`; nullptr for element types.
  QuantDotFn For(DType dtype) const {
    switch (dtype) {
      case DType::kQ8_0: return q8_0;
      case DType::kQ4_0: return q4_0;
      case DType::kQ4_K: return q4_k;
      case DType::kQ6_K: return q6_k;
      case DType::kF8_E4M3: return f8_e4m3;
      case DType::kQ5_0: return q5_0;
      case DType::kQ5_1: return q5_1;
      case DType::kQ4_1: return q4_1;
      case DType::kQ5_K: return q5_k;
      case DType::kF32:
      case DType::kBF16:
      case DType::kF16:
      case DType::kI32: return nullptr;
    }
    return nullptr;
  }
};

// Portable: each block dequantized by the scalar reference into a buffer, then multiplied.
const QuantDotKernels& GenericQuantDotKernels();
// nullptr when this build did not compile the ISA (non-x86 hosts).
const QuantDotKernels* Avx2QuantDotKernels();
const QuantDotKernels* Avx512QuantDotKernels();

}  // namespace kiln::cpu
