// Compiled with -mavx2 -mfma -mf16c: the int8 kernels of quant_int8_inl.h on vpmaddubsw /
// vpmaddwd. Used by the AVX2 table, and by the AVX-512 one on CPUs without VNNI.
#include "backends/cpu/simd/quant_int8_inl.h"

namespace kiln::cpu {

namespace {

struct Avx2Int8 {
  // The 16-bit pair sums cannot saturate: quant_int8.h bounds the operands.
  static __m256i DotBytes(__m256i acc, __m256i u8, __m256i s8) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u8, s8), _mm256_set1_epi16(1)));
  }
  static __m256i DotWords(__m256i acc, __m256i a, __m256i b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
  static __m256i AddFifthBits(__m256i q, const uint8_t* qh) { return _mm256_or_si256(q, FifthBits(qh)); }
};

}  // namespace

const Int8DotKernels* Avx2Int8DotKernels() {
  static const Int8DotKernels kernels = MakeInt8DotKernels<Avx2Int8>("avx2");
  return &kernels;
}

}  // namespace kiln::cpu
