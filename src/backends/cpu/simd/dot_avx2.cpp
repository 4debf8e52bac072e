// Compiled with -mavx2 -mfma -mf16c; only called after the CPU probe says so.
#include <immintrin.h>

#include "backends/cpu/simd/dot.h"
#include "backends/cpu/simd/vector_math_inl.h"
#include "core/dtype.h"

namespace kiln::cpu {

namespace {

inline __m256 LoadWeights(const float* w) { return _mm256_loadu_ps(w); }
inline __m256 LoadBf16(const uint16_t* w) {
  __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}
inline __m256 LoadF16(const uint16_t* w) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
}
inline float HorizontalSum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_shuffle_ps(sum, sum, 1));
  return _mm_cvtss_f32(sum);
}

inline float ToFloat(float v) { return v; }
inline float ToFloatBf16(uint16_t v) { return Bf16ToF32(v); }
inline float ToFloatF16(uint16_t v) { return F16ToF32(v); }

// Two accumulators per row hide the FMA latency.
template <int R, typename W, __m256 (*Load)(const W*), float (*Scalar)(W)>
void DotFixed(const float* x, int64_t x_stride, const W* w, int64_t k, float* out, int64_t out_stride) {
  __m256 acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256 w0 = Load(w + i), w1 = Load(w + i + 8);
    for (int r = 0; r < R; ++r) {
      acc0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * x_stride + i), w0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * x_stride + i + 8), w1, acc1[r]);
    }
  }
  for (; i + 8 <= k; i += 8) {
    const __m256 w0 = Load(w + i);
    for (int r = 0; r < R; ++r) acc0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * x_stride + i), w0, acc0[r]);
  }
  for (int r = 0; r < R; ++r) {
    float sum = HorizontalSum(_mm256_add_ps(acc0[r], acc1[r]));
    for (int64_t j = i; j < k; ++j) sum += x[r * x_stride + j] * Scalar(w[j]);
    out[r * out_stride] = sum;
  }
}

template <typename W, __m256 (*Load)(const W*), float (*Scalar)(W)>
void DotRows(const float* x, int64_t x_stride, int rows, const W* w, int64_t k, float* out, int64_t out_stride) {
  switch (rows) {
    case 1: return DotFixed<1, W, Load, Scalar>(x, x_stride, w, k, out, out_stride);
    case 2: return DotFixed<2, W, Load, Scalar>(x, x_stride, w, k, out, out_stride);
    case 3: return DotFixed<3, W, Load, Scalar>(x, x_stride, w, k, out, out_stride);
    default: return DotFixed<4, W, Load, Scalar>(x, x_stride, w, k, out, out_stride);
  }
}

template <int C, typename W, __m256 (*Load)(const W*), float (*Scalar)(W)>
void GemvFixed(const float* x, const W* w, int64_t w_stride, int64_t k, float* out) {
  __m256 acc0[C], acc1[C];
  for (int j = 0; j < C; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    for (int j = 0; j < C; ++j) {
      acc0[j] = _mm256_fmadd_ps(x0, Load(w + j * w_stride + i), acc0[j]);
      acc1[j] = _mm256_fmadd_ps(x1, Load(w + j * w_stride + i + 8), acc1[j]);
    }
  }
  for (int j = 0; j < C; ++j) {
    float sum = HorizontalSum(_mm256_add_ps(acc0[j], acc1[j]));
    for (int64_t t = i; t < k; ++t) sum += x[t] * Scalar(w[j * w_stride + t]);
    out[j] = sum;
  }
}

template <typename W, __m256 (*Load)(const W*), float (*Scalar)(W)>
void Gemv(const float* x, const W* w, int64_t w_stride, int64_t k, int count, float* out) {
  switch (count) {
    case 1: return GemvFixed<1, W, Load, Scalar>(x, w, w_stride, k, out);
    case 2: return GemvFixed<2, W, Load, Scalar>(x, w, w_stride, k, out);
    case 3: return GemvFixed<3, W, Load, Scalar>(x, w, w_stride, k, out);
    default: return GemvFixed<4, W, Load, Scalar>(x, w, w_stride, k, out);
  }
}

}  // namespace

const VectorMathKernels* Avx2VectorMath() {
  static const VectorMathKernels kernels{GeluMulLoop, SoftcapLoop};
  return &kernels;
}

const DotKernels* Avx2DotKernels() {
  static const DotKernels kernels{"avx2", true, DotRows<float, LoadWeights, ToFloat>,
                                  DotRows<uint16_t, LoadBf16, ToFloatBf16>, DotRows<uint16_t, LoadF16, ToFloatF16>,
                                  Gemv<float, LoadWeights, ToFloat>, Gemv<uint16_t, LoadBf16, ToFloatBf16>,
                                  Gemv<uint16_t, LoadF16, ToFloatF16>, nullptr, nullptr, nullptr,
                                  Avx2QuantDotKernels(), Avx2VectorMath()};
  return &kernels;
}

}  // namespace kiln::cpu
