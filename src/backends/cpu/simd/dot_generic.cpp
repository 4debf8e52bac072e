#include <cstdio>
#include <cstdlib>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <cstring>
#include <string>

#include "backends/cpu/simd/dot.h"
#include "backends/cpu/simd/vector_math_inl.h"
#include "core/dtype.h"

namespace kiln::cpu {

namespace {

template <typename W, float (*Convert)(W)>
void DotRows(const float* x, int64_t x_stride, int rows, const W* w, int64_t k, float* out, int64_t out_stride) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + r * x_stride;
    float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // eight lanes so the compiler can vectorize
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
      for (int lane = 0; lane < 8; ++lane) partial[lane] += xr[i + lane] * Convert(w[i + lane]);
    }
    float sum = 0.0f;
    for (; i < k; ++i) sum += xr[i] * Convert(w[i]);
    for (float p : partial) sum += p;
    out[r * out_stride] = sum;
  }
}

float Identity(float v) { return v; }
float Bf16(uint16_t v) { return Bf16ToF32(v); }
float F16(uint16_t v) { return F16ToF32(v); }

}  // namespace

const VectorMathKernels& GenericVectorMath() {
  static const VectorMathKernels kernels{GeluMulLoop, SoftcapLoop};
  return kernels;
}

const DotKernels& GenericDotKernels() {
  static const DotKernels kernels{"generic", true, DotRows<float, Identity>, DotRows<uint16_t, Bf16>, DotRows<uint16_t, F16>,
                                  GemvFromDot<float, DotRows<float, Identity>>, GemvFromDot<uint16_t, DotRows<uint16_t, Bf16>>,
                                  GemvFromDot<uint16_t, DotRows<uint16_t, F16>>,
                                  nullptr, nullptr, nullptr, &GenericQuantDotKernels(), &GenericVectorMath()};
  return kernels;
}

std::vector<const DotKernels*> SupportedDotKernels() {
  std::vector<const DotKernels*> tables = {&GenericDotKernels()};
#if defined(__x86_64__)
  __builtin_cpu_init();
  // F16C is read from CPUID leaf 1 (ECX bit 29): not every compiler's builtin knows its name.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  if (avx2 && Avx2DotKernels()) tables.push_back(Avx2DotKernels());
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && Avx512DotKernels()) {
    tables.push_back(Avx512DotKernels());
    if (__builtin_cpu_supports("avx512bf16") && Avx512Bf16DotKernels()) tables.push_back(Avx512Bf16DotKernels());
  }
#endif
  return tables;
}

const DotKernels& SelectDotKernels() {
  static const DotKernels* chosen = [] {
    std::vector<const DotKernels*> tables = SupportedDotKernels();
    const DotKernels* best = tables.front();
    for (const DotKernels* table : tables) if (table->exact) best = table;
    if (const char* wanted = std::getenv("KILN_CPU_ISA"); wanted && *wanted) {
      std::string available;
      for (const DotKernels* table : tables) {
        if (std::strcmp(table->isa, wanted) == 0) return table;
        available += std::string(available.empty() ? "" : ", ") + table->isa;
      }
      // An ignored override would measure or test another ISA than the one asked for, unsaid.
      const bool known = std::strcmp(wanted, "generic") == 0 || std::strcmp(wanted, "avx2") == 0 ||
                         std::strcmp(wanted, "avx512") == 0 || std::strcmp(wanted, "avx512bf16") == 0;
      std::fprintf(stderr, "kiln: KILN_CPU_ISA=%s %s; this CPU runs %s; using %s\n", wanted,
                   known ? "is not supported by this CPU (or this build)" : "is not an ISA kiln knows (generic, avx2, avx512, avx512bf16)",
                   available.c_str(), best->isa);
    }
    return best;
  }();
  // Block-format weights multiply int8-rounded activations unless KILN_CPU_INT8_ACTIVATIONS=0
  // asks for the f32 path (exact products of the dequantized weights; slower): the same table
  // with its int8 kernels taken out.
  static const DotKernels* selected = [] {
    const char* int8 = std::getenv("KILN_CPU_INT8_ACTIVATIONS");
    if (int8 == nullptr || std::strcmp(int8, "0") != 0 || chosen->quant->int8 == nullptr) return chosen;
    static QuantDotKernels quant = *chosen->quant;
    static DotKernels table = *chosen;
    quant.int8 = nullptr;
    table.quant = &quant;
    return static_cast<const DotKernels*>(&table);
  }();
  return *selected;
}

}  // namespace kiln::cpu
