// Elementwise functions with transcendental math, one table per ISA like the dot kernels: the
// feed-forward's GELU (tanh form) times up, and the final logit softcap. With libm's scalar tanhf
// they took about a tenth of a small model's decode step (the softcap runs over the whole
// vocabulary every token); these are written so that each ISA's translation unit vectorizes them.
//
// Accuracy (vector_math_test.cpp, against std::tanh in double): softcap within 1e-6 relative
// (about 8 ulp) of cap * tanh(x / cap); gelu_mul within 1e-6 relative of the exact value plus
// 1e-7 |g up| (u rounded to f32 moves the negative tail's exp(-2u) by |2u| ulp).
#pragma once

#include <cstdint>

namespace kiln::cpu {

struct VectorMathKernels {
  // y[i] = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * up[i], g = gate[i].
  void (*gelu_mul)(const float* gate, const float* up, float* y, int64_t count) = nullptr;
  // y[i] = cap * tanh(x[i] / cap).
  void (*softcap)(const float* x, float cap, float* y, int64_t count) = nullptr;
};

const VectorMathKernels& GenericVectorMath();
// nullptr when this build did not compile the ISA.
const VectorMathKernels* Avx2VectorMath();
const VectorMathKernels* Avx512VectorMath();

}  // namespace kiln::cpu
