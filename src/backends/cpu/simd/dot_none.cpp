// Hosts without x86 SIMD tables: only the generic kernels exist.
#include "backends/cpu/simd/dot.h"

namespace kiln::cpu {
const DotKernels* Avx2DotKernels() { return nullptr; }
const DotKernels* Avx512DotKernels() { return nullptr; }
const DotKernels* Avx512Bf16DotKernels() { return nullptr; }
const QuantDotKernels* Avx2QuantDotKernels() { return nullptr; }
const QuantDotKernels* Avx512QuantDotKernels() { return nullptr; }
const VectorMathKernels* Avx2VectorMath() { return nullptr; }
const VectorMathKernels* Avx512VectorMath() { return nullptr; }
}  // namespace kiln::cpu
