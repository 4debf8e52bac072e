// Compiled with -mavx512bf16 (plus AVX-512F/BW/VL); only called after the CPU probe.
// bf16 weights: activations are rounded to bf16 in pairs and multiplied with vdpbf16ps (fp32
// accumulation). f32 and f16 weights use the exact AVX-512 kernels.
#include <immintrin.h>

#include "backends/cpu/simd/dot.h"

namespace kiln::cpu {

namespace {

template <int R>
void DotBf16Fixed(const float* x, int64_t x_stride, const uint16_t* w, int64_t k, float* out, int64_t out_stride) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i < k; i += 32) {
    const int64_t left = k - i;
    const __mmask32 mask = left >= 32 ? 0xffffffffu : static_cast<__mmask32>((1ull << left) - 1);
    const __mmask16 low = static_cast<__mmask16>(mask), high = static_cast<__mmask16>(mask >> 16);
    const __m512bh weights = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, w + i));
    for (int r = 0; r < R; ++r) {
      const float* xr = x + r * x_stride + i;
      // Element 2j of the pair vector comes from the second argument's lane j (low half first).
      const __m512bh pairs = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(high, xr + 16), _mm512_maskz_loadu_ps(low, xr));
      acc[r] = _mm512_dpbf16_ps(acc[r], pairs, weights);
    }
  }
  for (int r = 0; r < R; ++r) {
    float lanes[16];
    _mm512_storeu_ps(lanes, acc[r]);
    float sum = 0.0f;
    for (float v : lanes) sum += v;
    out[r * out_stride] = sum;
  }
}

void DotBf16(const float* x, int64_t x_stride, int rows, const uint16_t* w, int64_t k, float* out, int64_t out_stride) {
  switch (rows) {
    case 1: return DotBf16Fixed<1>(x, x_stride, w, k, out, out_stride);
    case 2: return DotBf16Fixed<2>(x, x_stride, w, k, out, out_stride);
    case 3: return DotBf16Fixed<3>(x, x_stride, w, k, out, out_stride);
    default: return DotBf16Fixed<4>(x, x_stride, w, k, out, out_stride);
  }
}

}  // namespace

const DotKernels* Avx512Bf16DotKernels() {
  const DotKernels* exact = Avx512DotKernels();
  static const DotKernels kernels{"avx512bf16", false, exact->f32, DotBf16, exact->f16,
                                  exact->gemv_f32, GemvFromDot<uint16_t, DotBf16>, exact->gemv_f16,
                                  exact->tile_f32, nullptr, exact->tile_f16, exact->quant, exact->math};
  return &kernels;
}

}  // namespace kiln::cpu
