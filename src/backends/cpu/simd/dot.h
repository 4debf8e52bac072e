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

namespace kiln::cpu {

inline constexpr int kMaxRows = 4;

using DotF32Fn = void (*)(const float* x, int64_t x_stride, int rows, const float* w, int64_t k,
                          float* out, int64_t out_stride);
using DotU16Fn = void (*)(const float* x, int64_t x_stride, int rows, const uint16_t* w, int64_t k,
                          float* out, int64_t out_stride);

struct DotKernels {
  const char* isa = "generic";
  // false when the table rounds activations (avx512bf16 multiplies bf16 x bf16 pairs): faster
  // on bf16 weights, but off by up to 2^-8 relative, so it is chosen only when asked for.
  bool exact = true;
  DotF32Fn f32 = nullptr;
  DotU16Fn bf16 = nullptr;
  DotU16Fn f16 = nullptr;
};

const DotKernels& GenericDotKernels();
// nullptr when this build did not compile the ISA (non-x86 hosts).
const DotKernels* Avx2DotKernels();
const DotKernels* Avx512DotKernels();
const DotKernels* Avx512Bf16DotKernels();

// Every table this build compiled that this CPU can run, best last.
std::vector<const DotKernels*> SupportedDotKernels();
// The best supported exact table, probed once. KILN_CPU_ISA=generic|avx2|avx512|avx512bf16
// picks another supported one.
const DotKernels& SelectDotKernels();

}  // namespace kiln::cpu
