// Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c; only called after the CPU probe.
#include "backends/cpu/simd/quant_dot_inl.h"

namespace kiln::cpu {

namespace {

struct Avx512Vectors {
  static constexpr int kLanes = 16;
  using F = __m512;
  using I = __m512i;
  static I LoadU8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static I LoadI8(const int8_t* p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static I And(I a, int32_t mask) { return _mm512_and_si512(a, _mm512_set1_epi32(mask)); }
  static I Or(I a, I b) { return _mm512_or_si512(a, b); }
  static I Sub(I a, int32_t value) { return _mm512_sub_epi32(a, _mm512_set1_epi32(value)); }
  template <int n>
  static I ShiftLeft(I a) { return _mm512_slli_epi32(a, n); }
  template <int n>
  static I ShiftRight(I a) { return _mm512_srli_epi32(a, n); }
  static F ToFloat(I a) { return _mm512_cvtepi32_ps(a); }
  static F BitsToFloat(I a) { return _mm512_castsi512_ps(a); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static F Broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static F Zero() { return _mm512_setzero_ps(); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F FmSub(F a, F b, F c) { return _mm512_fmsub_ps(a, b, c); }
  static float Sum(F a) { return _mm512_reduce_add_ps(a); }
  static float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }
};

}  // namespace

const QuantDotKernels* Avx512QuantDotKernels() {
  static const QuantDotKernels kernels = [] {
    QuantDotKernels table = MakeQuantDotKernels<Avx512Vectors>();
    // VNNI came after AVX-512 F/BW (Cascade Lake, Ice Lake, Zen 4): without it the AVX2 int8
    // kernels are still far ahead of the f32 path.
    table.int8 = __builtin_cpu_supports("avx512vnni") ? Avx512VnniInt8DotKernels() : Avx2Int8DotKernels();
    return table;
  }();
  return &kernels;
}

}  // namespace kiln::cpu
