// Block-format dot products on int8 activations: the decode path llama.cpp takes (its Q8_0 / Q8_K
// activation blocks), written for kiln. A linear call rounds each f32 activation row to int8
// blocks once (QuantizeActFn, into scratch sized up front), then every weight row is multiplied
// by integer dot products per block (AVX-512 VNNI vpdpbusd / vpdpwssd, or AVX2 vpmaddubsw +
// vpmaddwd), scaled by the weight's and the activation's f32 scales and summed across blocks in
// f32. The f32 path of quant_dot.h spends most of its time turning every weight into an f32;
// here a weight stays a byte and four of its products cost one instruction.
//
// Activation layouts (one per weight block size; a row is k / elements blocks, back to back):
//   ActBlock32  for q8_0, q4_0, q4_1, q5_0, q5_1: 32 values, d = max|x| / 127, q = round(x / d)
//               (ties to even, so |q| <= 127), and sum = sum of q (the q4_0 / q5_0 offsets and
//               the q4_1 / q5_1 minimums multiply it).
//   ActBlock256 for q4_k, q5_k, q6_k: the same over 256 values, with the sums of q per 16 (q6_k's
//               sub-blocks) and per 32 (q4_k / q5_k's).
// Rows are independent: rows > 1 (prefill, batched decode) quantize every row once per call and
// each weight block, unpacked once, is multiplied into up to kMaxRows of them.
//
// Accuracy: the only rounding beyond the f32 path's is that of the activations, |x - d q| <= d/2
// per element, so a result differs from the exact dot by at most sum over blocks of
// (d_block / 2) * sum |w| in that block, plus f32 rounding of the per-block products
// (quant_kernel_test.cpp checks exactly this bound). The integer sums cannot overflow: |q| <=
// 127 and a weight's integer value is at most 6 bits times an 8-bit scale (q6_k: 256 products
// of at most 63 * 128 * 127 stay below 2^31); AVX2's 16-bit pair sums stay below 2^15 for the
// same reason (q8_0 pairs |w| <= 128 with |q| <= 127).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace kiln::cpu {

struct ActBlock32 {
  float d;
  int32_t sum;
  int8_t q[32];
};

struct ActBlock256 {
  float d;
  int32_t unused;     // keeps the sums and q 8-byte aligned
  int16_t sums16[16];  // sum of q[16 i .. 16 i + 16)
  int16_t sums32[8];   // sum of q[32 i .. 32 i + 32)
  int8_t q[256];
};
static_assert(sizeof(ActBlock32) == 40 && sizeof(ActBlock256) == 312);

// Rounds `rows` rows of x (x_stride floats apart, k elements, k whole blocks) into xq, rows
// Int8ActRowBytes(dtype, k) bytes apart.
using QuantizeActFn = void (*)(const float* x, int64_t x_stride, int64_t rows, int64_t k, void* xq);

// out[r * out_stride + j] = sum_i x_r[i] * W_j[i], r < rows, j < count: xq is `rows` rows from the
// dtype's QuantizeActFn for this k, W_j = w + j * w_row_bytes.
using Int8DotFn = void (*)(const void* xq, int64_t rows, const void* w, int64_t w_row_bytes, int64_t count, int64_t k,
                           float* out, int64_t out_stride);

struct Int8DotKernels {
  const char* isa = "";
  QuantizeActFn quantize32 = nullptr;   // ActBlock32 rows
  QuantizeActFn quantize256 = nullptr;  // ActBlock256 rows
  // nullptr for a format without an int8 kernel (f8_e4m3; the f32 path of quant_dot.h serves it).
  Int8DotFn q8_0 = nullptr, q4_0 = nullptr, q4_1 = nullptr, q5_0 = nullptr, q5_1 = nullptr;
  Int8DotFn q4_k = nullptr, q5_k = nullptr, q6_k = nullptr;

  Int8DotFn For(DType dtype) const;
  QuantizeActFn QuantizerFor(DType dtype) const;
};

// Bytes of one activation row of k elements in the layout `dtype`'s int8 kernel reads; 0 when
// the format has no int8 activations. Independent of the ISA, so scratch can be planned for it.
int64_t Int8ActRowBytes(DType dtype, int64_t k);

// The scalar definition of the two layouts (the SIMD quantizers write the same bytes).
void QuantizeAct32Reference(const float* x, int64_t x_stride, int64_t rows, int64_t k, void* xq);
void QuantizeAct256Reference(const float* x, int64_t x_stride, int64_t rows, int64_t k, void* xq);

// Every f16 bit pattern as f32 (256 KiB, built on first use): a weight block's scale is then
// one load instead of a conversion on the vector ports.
const float* F16ToF32Table();

// nullptr when this build did not compile the ISA. Callers check the CPU first (quant_dot.h's
// tables do): the VNNI table needs AVX-512 F/BW/VL and VNNI, the AVX2 one AVX2, FMA and F16C.
const Int8DotKernels* Avx2Int8DotKernels();
const Int8DotKernels* Avx512VnniInt8DotKernels();

}  // namespace kiln::cpu
