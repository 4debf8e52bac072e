// Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c; only called after the CPU probe.
#include <immintrin.h>

#include "backends/cpu/simd/dot.h"
#include "backends/cpu/simd/vector_math_inl.h"

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

// Accumulators are named variables, not arrays: GCC 12 kept arrays of __m512 on the stack here,
// which chained every FMA through a store and a load and halved the decode bandwidth.
template <typename W, __m512 (*Load)(const W*, __mmask16)>
void Gemv4(const float* x, const W* w, int64_t w_stride, int64_t k, float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  const W *w0 = w, *w1 = w + w_stride, *w2 = w + 2 * w_stride, *w3 = w + 3 * w_stride;
  const __mmask16 all = 0xffff;
  int64_t i = 0;
  // The next block of rows (callers walk weight rows in order): fetched while this one computes,
  // as the hardware prefetcher loses track of four interleaved streams.
  const char* ahead = reinterpret_cast<const char*>(w + 4 * w_stride);
  const int64_t row_bytes = w_stride * static_cast<int64_t>(sizeof(W));
  for (; i + 32 <= k; i += 32) {
    const int64_t at = i * static_cast<int64_t>(sizeof(W));
    _mm_prefetch(ahead + at, _MM_HINT_T0);
    _mm_prefetch(ahead + row_bytes + at, _MM_HINT_T0);
    _mm_prefetch(ahead + 2 * row_bytes + at, _MM_HINT_T0);
    _mm_prefetch(ahead + 3 * row_bytes + at, _MM_HINT_T0);
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
    a0 = _mm512_fmadd_ps(x0, Load(w0 + i, all), a0);
    a1 = _mm512_fmadd_ps(x0, Load(w1 + i, all), a1);
    a2 = _mm512_fmadd_ps(x0, Load(w2 + i, all), a2);
    a3 = _mm512_fmadd_ps(x0, Load(w3 + i, all), a3);
    b0 = _mm512_fmadd_ps(x1, Load(w0 + i + 16, all), b0);
    b1 = _mm512_fmadd_ps(x1, Load(w1 + i + 16, all), b1);
    b2 = _mm512_fmadd_ps(x1, Load(w2 + i + 16, all), b2);
    b3 = _mm512_fmadd_ps(x1, Load(w3 + i + 16, all), b3);
  }
  for (; i < k; i += 16) {
    const int64_t left = k - i;
    const __mmask16 mask = left >= 16 ? all : static_cast<__mmask16>((1u << left) - 1);
    const __m512 x0 = _mm512_maskz_loadu_ps(mask, x + i);
    a0 = _mm512_fmadd_ps(x0, Load(w0 + i, mask), a0);
    a1 = _mm512_fmadd_ps(x0, Load(w1 + i, mask), a1);
    a2 = _mm512_fmadd_ps(x0, Load(w2 + i, mask), a2);
    a3 = _mm512_fmadd_ps(x0, Load(w3 + i, mask), a3);
  }
  out[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0));
  out[1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1));
  out[2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2));
  out[3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3));
}

template <typename W, __m512 (*Load)(const W*, __mmask16)>
void Gemv(const float* x, const W* w, int64_t w_stride, int64_t k, int count, float* out) {
  if (count == 4) return Gemv4<W, Load>(x, w, w_stride, k, out);
  for (int j = 0; j < count; ++j) DotFixed<1, W, Load>(x, 0, w + j * w_stride, k, out + j, 1);
}

// One activation row against four weight vectors: four FMAs into that row's accumulators.
__attribute__((always_inline)) inline void TileRow(__m512 x, __m512 v0, __m512 v1, __m512 v2, __m512 v3, __m512& a0,
                                                   __m512& a1, __m512& a2, __m512& a3) {
  a0 = _mm512_fmadd_ps(x, v0, a0);
  a1 = _mm512_fmadd_ps(x, v1, a1);
  a2 = _mm512_fmadd_ps(x, v2, a2);
  a3 = _mm512_fmadd_ps(x, v3, a3);
}

// The sums of four accumulators as one vector: halves added down to 4 lanes, then two horizontal
// adds; a quarter of the shuffles of four separate reductions.
__attribute__((always_inline)) inline __m128 Sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  auto to256 = [](__m512 v) { return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))); };
  auto to128 = [](__m256 v) { return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); };
  return _mm_hadd_ps(_mm_hadd_ps(to128(to256(a)), to128(to256(b))), _mm_hadd_ps(to128(to256(c)), to128(to256(d))));
}

// R (1..4) activation rows x 4 weight rows: each loaded (and converted) weight vector feeds R
// FMAs and each activation vector four. 16 named accumulators (arrays were spilled to the stack by
// GCC 12, as in Gemv4); the rows past R are compiled out.
template <int R, typename W, __m512 (*Load)(const W*, __mmask16)>
void TileRows(const float* x, int64_t x_stride, const W* w, int64_t w_stride, int64_t k, float* out, int64_t out_stride) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
  __m512 c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
  for (int64_t i = 0; i < k; i += 16) {
    const int64_t left = k - i;
    const __mmask16 mask = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
    const __m512 v0 = Load(w + i, mask), v1 = Load(w + w_stride + i, mask), v2 = Load(w + 2 * w_stride + i, mask),
                 v3 = Load(w + 3 * w_stride + i, mask);
    TileRow(_mm512_maskz_loadu_ps(mask, x + i), v0, v1, v2, v3, c00, c01, c02, c03);
    if constexpr (R > 1) TileRow(_mm512_maskz_loadu_ps(mask, x + x_stride + i), v0, v1, v2, v3, c10, c11, c12, c13);
    if constexpr (R > 2) TileRow(_mm512_maskz_loadu_ps(mask, x + 2 * x_stride + i), v0, v1, v2, v3, c20, c21, c22, c23);
    if constexpr (R > 3) TileRow(_mm512_maskz_loadu_ps(mask, x + 3 * x_stride + i), v0, v1, v2, v3, c30, c31, c32, c33);
  }
  _mm_storeu_ps(out, Sum4(c00, c01, c02, c03));
  if constexpr (R > 1) _mm_storeu_ps(out + out_stride, Sum4(c10, c11, c12, c13));
  if constexpr (R > 2) _mm_storeu_ps(out + 2 * out_stride, Sum4(c20, c21, c22, c23));
  if constexpr (R > 3) _mm_storeu_ps(out + 3 * out_stride, Sum4(c30, c31, c32, c33));
}

template <typename W, __m512 (*Load)(const W*, __mmask16)>
void Tile(const float* x, int64_t x_stride, int rows, const W* w, int64_t w_stride, int64_t k, float* out, int64_t out_stride) {
  switch (rows) {
    case 1: return TileRows<1, W, Load>(x, x_stride, w, w_stride, k, out, out_stride);
    case 2: return TileRows<2, W, Load>(x, x_stride, w, w_stride, k, out, out_stride);
    case 3: return TileRows<3, W, Load>(x, x_stride, w, w_stride, k, out, out_stride);
    default: return TileRows<4, W, Load>(x, x_stride, w, w_stride, k, out, out_stride);
  }
}

}  // namespace

const VectorMathKernels* Avx512VectorMath() {
  static const VectorMathKernels kernels{GeluMulLoop, SoftcapLoop};
  return &kernels;
}

const DotKernels* Avx512DotKernels() {
  static const DotKernels kernels{"avx512", true, DotRows<float, LoadF32>, DotRows<uint16_t, LoadBf16>,
                                  DotRows<uint16_t, LoadF16>, Gemv<float, LoadF32>, Gemv<uint16_t, LoadBf16>,
                                  Gemv<uint16_t, LoadF16>, Tile<float, LoadF32>, Tile<uint16_t, LoadBf16>,
                                  Tile<uint16_t, LoadF16>, Avx512QuantDotKernels(), Avx512VectorMath()};
  return &kernels;
}

}  // namespace kiln::cpu
