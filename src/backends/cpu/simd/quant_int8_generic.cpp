// The ISA-independent half of quant_int8.h: layouts, the scalar quantizers that define them, and
// the per-format lookups.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/simd/quant_int8.h"

namespace kiln::cpu {

namespace {

// One block of n values: d and q as quant_int8.h defines them. The reciprocal is one f32 division
// and each value one f32 multiply, then round half to even: the SIMD quantizers do the same
// operations, so they write the same bytes.
float QuantizeBlock(const float* x, int n, int8_t* q) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * inverse));
  return amax / 127.0f;
}

}  // namespace

void QuantizeAct32Reference(const float* x, int64_t x_stride, int64_t rows, int64_t k, void* xq) {
  auto* out = static_cast<ActBlock32*>(xq);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < k / 32; ++b, ++out) {
      out->d = QuantizeBlock(x + r * x_stride + 32 * b, 32, out->q);
      out->sum = 0;
      for (int8_t v : out->q) out->sum += v;
    }
  }
}

void QuantizeAct256Reference(const float* x, int64_t x_stride, int64_t rows, int64_t k, void* xq) {
  auto* out = static_cast<ActBlock256*>(xq);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < k / 256; ++b, ++out) {
      out->d = QuantizeBlock(x + r * x_stride + 256 * b, 256, out->q);
      out->unused = 0;
      for (int i = 0; i < 16; ++i) {
        int sum = 0;
        for (int j = 0; j < 16; ++j) sum += out->q[16 * i + j];
        out->sums16[i] = static_cast<int16_t>(sum);
      }
      for (int i = 0; i < 8; ++i) out->sums32[i] = static_cast<int16_t>(out->sums16[2 * i] + out->sums16[2 * i + 1]);
    }
  }
}

int64_t Int8ActRowBytes(DType dtype, int64_t k) {
  switch (dtype) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1: return k / 32 * static_cast<int64_t>(sizeof(ActBlock32));
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return k / 256 * static_cast<int64_t>(sizeof(ActBlock256));
    default: return 0;
  }
}

Int8DotFn Int8DotKernels::For(DType dtype) const {
  switch (dtype) {
    case DType::kQ8_0: return q8_0;
    case DType::kQ4_0: return q4_0;
    case DType::kQ4_1: return q4_1;
    case DType::kQ5_0: return q5_0;
    case DType::kQ5_1: return q5_1;
    case DType::kQ4_K: return q4_k;
    case DType::kQ5_K: return q5_k;
    case DType::kQ6_K: return q6_k;
    default: return nullptr;
  }
}

QuantizeActFn Int8DotKernels::QuantizerFor(DType dtype) const {
  const int64_t row = Int8ActRowBytes(dtype, 256);
  if (row == 0) return nullptr;
  return row == Int8ActRowBytes(DType::kQ8_0, 256) ? quantize32 : quantize256;
}

const float* F16ToF32Table() {
  static const std::vector<float> table = [] {
    std::vector<float> values(65536);
    for (uint32_t bits = 0; bits < 65536; ++bits) values[bits] = F16ToF32(static_cast<uint16_t>(bits));
    return values;
  }();
  return table.data();
}

#if !defined(__x86_64__)
const Int8DotKernels* Avx2Int8DotKernels() { return nullptr; }
const Int8DotKernels* Avx512VnniInt8DotKernels() { return nullptr; }
#endif

}  // namespace kiln::cpu
