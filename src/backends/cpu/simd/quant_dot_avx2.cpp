// Compiled with -mavx2 -mfma -mf16c; only called after the CPU probe says so.
#include "backends/cpu/simd/quant_dot_inl.h"

namespace kiln::cpu {

namespace {

struct Avx2Vectors {
  static constexpr int kLanes = 8;
  using F = __m256;
  using I = __m256i;
  static I LoadU8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
  static I LoadI8(const int8_t* p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
  static I And(I a, int32_t mask) { return _mm256_and_si256(a, _mm256_set1_epi32(mask)); }
  static I Or(I a, I b) { return _mm256_or_si256(a, b); }
  static I Sub(I a, int32_t value) { return _mm256_sub_epi32(a, _mm256_set1_epi32(value)); }
  template <int n>
  static I ShiftLeft(I a) { return _mm256_slli_epi32(a, n); }
  template <int n>
  static I ShiftRight(I a) { return _mm256_srli_epi32(a, n); }
  static F ToFloat(I a) { return _mm256_cvtepi32_ps(a); }
  static F BitsToFloat(I a) { return _mm256_castsi256_ps(a); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static F Zero() { return _mm256_setzero_ps(); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F FmSub(F a, F b, F c) { return _mm256_fmsub_ps(a, b, c); }
  static float Sum(F a) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_shuffle_ps(sum, sum, 1));
    return _mm_cvtss_f32(sum);
  }
  static float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }
};

}  // namespace

const QuantDotKernels* Avx2QuantDotKernels() {
  static const QuantDotKernels kernels = [] {
    QuantDotKernels table = MakeQuantDotKernels<Avx2Vectors>();
    table.int8 = Avx2Int8DotKernels();
    return table;
  }();
  return &kernels;
}

}  // namespace kiln::cpu
