// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c: the int8 kernels
// of quant_int8_inl.h on the 256-bit forms of vpdpbusd / vpdpwssd (one instruction where AVX2
// needs three). Only called after the CPU probe reports AVX-512 VNNI.
#include "backends/cpu/simd/quant_int8_inl.h"

namespace kiln::cpu {

namespace {

struct VnniInt8 {
  static __m256i DotBytes(__m256i acc, __m256i u8, __m256i s8) { return _mm256_dpbusd_epi32(acc, u8, s8); }
  static __m256i DotWords(__m256i acc, __m256i a, __m256i b) { return _mm256_dpwssd_epi32(acc, a, b); }
  // The 32 bits are a byte mask as they are: one mask move and one masked OR.
  static __m256i AddFifthBits(__m256i q, const uint8_t* qh) {
    uint32_t bits;
    std::memcpy(&bits, qh, 4);
    return _mm256_mask_add_epi8(q, _cvtu32_mask32(bits), q, _mm256_set1_epi8(16));
  }
};

}  // namespace

const Int8DotKernels* Avx512VnniInt8DotKernels() {
  static const Int8DotKernels kernels = MakeInt8DotKernels<VnniInt8>("avx512vnni");
  return &kernels;
}

}  // namespace kiln::cpu
