// Dot-product kernels, the inner loop of linear, attention and MoE on the CPU.
//
// One weight row w[K] against up to kMaxRows activation rows x[r * x_stride + k]:
//   out[r * out_stride] = sum_k x[r][k] * w[k]      (fp32 accumulation)
// Converting a bf16/f16 weight row once and using it for several rows is what makes prefill
// faster than decode per token. One table per ISA, compiled in its own translation unit with its
// own flags; SelectDotKernels() probes the CPU once and picks the best. Every compiled ISA is
// tested against a double-precision reference (tests/backends/dot_test.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "backends/cpu/simd/quant_dot.h"
#include "backends/cpu/simd/vector_math.h"

namespace kiln::cpu {

inline constexpr int kMaxRows = 4;

using DotF32Fn = void (*)(const float* x, int64_t x_stride, int rows, const float* w, int64_t k,
                          float* out, int64_t out_stride);
using DotU16Fn = void (*)(const float* x, int64_t x_stride, int rows, const uint16_t* w, int64_t k,
                          float* out, int64_t out_stride);

// One activation row x[k] against `count` (<= kMaxRows) weight rows w[j * w_stride + i]:
//   out[j] = sum_i x[i] * w[j * w_stride + i]
// The decode shape (T = 1): several weight streams in flight at once, x loaded once per block.
using GemvF32Fn = void (*)(const float* x, const float* w, int64_t w_stride, int64_t k, int count, float* out);
using GemvU16Fn = void (*)(const float* x, const uint16_t* w, int64_t w_stride, int64_t k, int count, float* out);

// A tile of `rows` (1..4) activation rows x 4 weight rows (prefill, verify steps, small batches):
//   out[r * out_stride + j] = sum_i x[r][i] * w[j][i]       r < rows, j < 4
// Up to 16 accumulators: each loaded (and converted) weight vector feeds `rows` FMAs, each
// activation vector four, and the four sums of a row are reduced together.
using TileF32Fn = void (*)(const float* x, int64_t x_stride, int rows, const float* w, int64_t w_stride, int64_t k, float* out,
                           int64_t out_stride);
using TileU16Fn = void (*)(const float* x, int64_t x_stride, int rows, const uint16_t* w, int64_t w_stride, int64_t k, float* out,
                           int64_t out_stride);

struct DotKernels {
  const char* isa = "generic";
  // false when the table rounds activations (avx512bf16 multiplies bf16 x bf16 pairs): faster
  // on bf16 weights, but off by up to 2^-8 relative, so it is chosen only when asked for.
  bool exact = true;
  DotF32Fn f32 = nullptr;
  DotU16Fn bf16 = nullptr;
  DotU16Fn f16 = nullptr;
  GemvF32Fn gemv_f32 = nullptr;
  GemvU16Fn gemv_bf16 = nullptr;
  GemvU16Fn gemv_f16 = nullptr;
  // Optional (nullptr: callers fall back to the row kernels).
  TileF32Fn tile_f32 = nullptr;
  TileU16Fn tile_bf16 = nullptr;
  TileU16Fn tile_f16 = nullptr;
  // Block-format weights (quant_dot.h); every table has them.
  const QuantDotKernels* quant = nullptr;
  // GELU and softcap (vector_math.h); every table has them.
  const VectorMathKernels* math = nullptr;
};

// A gemv made of `count` single-row dot calls, for tables without a dedicated one.
template <typename W, void (*Dot)(const float*, int64_t, int, const W*, int64_t, float*, int64_t)>
void GemvFromDot(const float* x, const W* w, int64_t w_stride, int64_t k, int count, float* out) {
  for (int j = 0; j < count; ++j) Dot(x, 0, 1, w + j * w_stride, k, out + j, 1);
}

const DotKernels& GenericDotKernels();
// nullptr when this build did not compile the ISA (non-x86 hosts).
const DotKernels* Avx2DotKernels();
const DotKernels* Avx512DotKernels();
const DotKernels* Avx512Bf16DotKernels();

// Every table this build compiled that this CPU can run, best last.
std::vector<const DotKernels*> SupportedDotKernels();
// The best supported exact table, probed once. KILN_CPU_ISA=generic|avx2|avx512|avx512bf16
// picks another supported one. "Exact" speaks of f32/bf16/f16 weights: block-format weights
// take the table's int8-activation kernels (quant_int8.h, as llama.cpp always does) unless
// KILN_CPU_INT8_ACTIVATIONS=0.
const DotKernels& SelectDotKernels();

}  // namespace kiln::cpu
