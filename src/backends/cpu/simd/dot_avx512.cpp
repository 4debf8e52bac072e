// Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c; only called after the CPU probe.
#include <immintrin.h>

#include "backends/cpu/simd/dot.h"

namespace kiln::cpu {

namespace {

inline __m512 LoadF32(const float* w, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, w); }
inline __m512 LoadBf16(const uint16_t* w, __mmask16 mask) {
  __m256i raw = _mm256_maskz_loadu_epi16(mask, w);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}
inline __m512 LoadF16(const uint16_t* w, __mmask16 mask) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, w));
}

template <int R, typename W, __m512 (*Load)(const W*, __mmask16)>
void DotFixed(const float* x, int64_t x_stride, const W* w, int64_t k, float* out, int64_t out_stride) {
  __m512 acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  const __mmask16 all = 0xffff;
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    const __m512 w0 = Load(w + i, all), w1 = Load(w + i + 16, all);
    for (int r = 0; r < R; ++r) {
      acc0[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * x_stride + i), w0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * x_stride + i + 16), w1, acc1[r]);
    }
  }
  for (; i < k; i += 16) {  // masked tail: no scalar loop
    const int64_t left = k - i;
    const __mmask16 mask = left >= 16 ? all : static_cast<__mmask16>((1u << left) - 1);
    const __m512 w0 = Load(w + i, mask);
    for (int r = 0; r < R; ++r) acc0[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + r * x_stride + i), w0, acc0[r]);
  }
  for (int r = 0; r < R; ++r) out[r * out_stride] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
}

template <typename W, __m512 (*Load)(const W*, __mmask16)>
void DotRows(const float* x, int64_t x_stride, int rows, const W* w, int64_t k, float* out, int64_t out_stride) {
  switch (rows) {
    case 1: return DotFixed<1, W, Load>(x, x_stride, w, k, out, out_stride);
    case 2: return DotFixed<2, W, Load>(x, x_stride, w, k, out, out_stride);
    case 3: return DotFixed<3, W, Load>(x, x_stride, w, k, out, out_stride);
    default: return DotFixed<4, W, Load>(x, x_stride, w, k, out, out_stride);
  }
}

template <int C, typename W, __m512 (*Load)(const W*, __mmask16)>
void GemvFixed(const float* x, const W* w, int64_t w_stride, int64_t k, float* out) {
  __m512 acc0[C], acc1[C];
  for (int j = 0; j < C; ++j) acc0[j] = acc1[j] = _mm512_setzero_ps();
  const __mmask16 all = 0xffff;
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
    for (int j = 0; j < C; ++j) {
      acc0[j] = _mm512_fmadd_ps(x0, Load(w + j * w_stride + i, all), acc0[j]);
      acc1[j] = _mm512_fmadd_ps(x1, Load(w + j * w_stride + i + 16, all), acc1[j]);
    }
  }
  for (; i < k; i += 16) {
    const int64_t left = k - i;
    const __mmask16 mask = left >= 16 ? all : static_cast<__mmask16>((1u << left) - 1);
    const __m512 x0 = _mm512_maskz_loadu_ps(mask, x + i);
    for (int j = 0; j < C; ++j) acc0[j] = _mm512_fmadd_ps(x0, Load(w + j * w_stride + i, mask), acc0[j]);
  }
  for (int j = 0; j < C; ++j) out[j] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[j], acc1[j]));
}

template <typename W, __m512 (*Load)(const W*, __mmask16)>
void Gemv(const float* x, const W* w, int64_t w_stride, int64_t k, int count, float* out) {
  switch (count) {
    case 1: return GemvFixed<1, W, Load>(x, w, w_stride, k, out);
    case 2: return GemvFixed<2, W, Load>(x, w, w_stride, k, out);
    case 3: return GemvFixed<3, W, Load>(x, w, w_stride, k, out);
    default: return GemvFixed<4, W, Load>(x, w, w_stride, k, out);
  }
}

template <typename W, __m512 (*Load)(const W*, __mmask16)>
void Tile4x4(const float* x, int64_t x_stride, const W* w, int64_t w_stride, int64_t k, float* out, int64_t out_stride) {
  __m512 acc[4][4];
  for (auto& row : acc) for (__m512& a : row) a = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; i += 16) {
    const int64_t left = k - i;
    const __mmask16 mask = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
    __m512 wv[4], xv[4];
    for (int j = 0; j < 4; ++j) wv[j] = Load(w + j * w_stride + i, mask);
    for (int r = 0; r < 4; ++r) xv[r] = _mm512_maskz_loadu_ps(mask, x + r * x_stride + i);
    for (int r = 0; r < 4; ++r) {
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_fmadd_ps(xv[r], wv[j], acc[r][j]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int j = 0; j < 4; ++j) out[r * out_stride + j] = _mm512_reduce_add_ps(acc[r][j]);
  }
}

}  // namespace

const DotKernels* Avx512DotKernels() {
  static const DotKernels kernels{"avx512", true, DotRows<float, LoadF32>, DotRows<uint16_t, LoadBf16>,
                                  DotRows<uint16_t, LoadF16>, Gemv<float, LoadF32>, Gemv<uint16_t, LoadBf16>,
                                  Gemv<uint16_t, LoadF16>, Tile4x4<float, LoadF32>, Tile4x4<uint16_t, LoadBf16>,
                                  Tile4x4<uint16_t, LoadF16>};
  return &kernels;
}

}  // namespace kiln::cpu
