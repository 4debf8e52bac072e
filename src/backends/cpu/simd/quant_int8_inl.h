// The int8-activation kernels of quant_int8.h, written once over 256-bit AVX2 vectors and
// included by quant_int8_avx2.cpp and quant_int8_vnni.cpp, which differ only in the traits T:
//   T::DotBytes(acc, u8, s8)   acc + the sums of four u8 x s8 products per i32 lane
//   T::DotWords(acc, a, b)     acc + the sums of two i16 x i16 products per i32 lane
//   T::AddFifthBits(q, qh)     q + 16 in the bytes whose bit is set in the 32 bits at qh
// (VNNI: one vpdpbusd / vpdpwssd; AVX2: vpmaddubsw or the i16 product, vpmaddwd, vpaddd).
// 256-bit vectors on purpose: a 32-element block is one vector, so no lanes are wasted on the
// formats people use most (q4_0, q8_0), and the AVX2 and VNNI tables share every line but two.
// Everything here has internal linkage: the two ISAs' copies must never be merged by the linker.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backends/cpu/simd/quant_int8.h"
#include "core/quant.h"

namespace kiln::cpu {
namespace {

// ---- Activation rows (layouts and rounding: quant_int8.h, QuantizeAct*Reference) ----

inline float MaxAbs(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}

inline int32_t SumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// 32 values x * inverse rounded half to even (the MXCSR default) into 32 bytes in element order;
// sums of the first and the second 16 into *low, *high.
inline void RoundBlock32(const float* x, __m256 inverse, int8_t* q, int32_t* low, int32_t* high) {
  const __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), inverse));
  const __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), inverse));
  const __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), inverse));
  const __m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), inverse));
  *low = SumI32(_mm256_add_epi32(q0, q1));
  *high = SumI32(_mm256_add_epi32(q2, q3));
  // The packs interleave 128-bit lanes: dwords come out as elements 0,8,16,24,4,12,20,28 (x4).
  const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

inline float Inverse(float amax) { return amax > 0.0f ? 127.0f / amax : 0.0f; }

void QuantizeAct32(const float* x, int64_t x_stride, int64_t rows, int64_t k, void* xq) {
  auto* out = static_cast<ActBlock32*>(xq);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < k / 32; ++b, ++out) {
      const float* xb = x + r * x_stride + 32 * b;
      const float amax = MaxAbs(xb, 32);
      int32_t low, high;
      RoundBlock32(xb, _mm256_set1_ps(Inverse(amax)), out->q, &low, &high);
      out->d = amax / 127.0f;
      out->sum = low + high;
    }
  }
}

void QuantizeAct256(const float* x, int64_t x_stride, int64_t rows, int64_t k, void* xq) {
  auto* out = static_cast<ActBlock256*>(xq);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < k / 256; ++b, ++out) {
      const float* xb = x + r * x_stride + 256 * b;
      const float amax = MaxAbs(xb, 256);
      const __m256 inverse = _mm256_set1_ps(Inverse(amax));
      out->d = amax / 127.0f;
      out->unused = 0;
      for (int i = 0; i < 8; ++i) {
        int32_t low, high;
        RoundBlock32(xb + 32 * i, inverse, out->q + 32 * i, &low, &high);
        out->sums16[2 * i] = static_cast<int16_t>(low);
        out->sums16[2 * i + 1] = static_cast<int16_t>(high);
        out->sums32[i] = static_cast<int16_t>(low + high);
      }
    }
  }
}

// ---- Weight blocks ----

inline __m256i LoadBytes(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 16 bytes of packed 4-bit values as 32 bytes: low nibbles (elements 0-15), then high ones. The
// bytes are loaded into both halves (a load, no shuffle) and only the upper half is shifted: two
// vector instructions per block, where a shift and an insert would take three.
inline __m256i Nibbles(const uint8_t* qs) {
  const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
}

// The 5th bits of a q5_0 / q5_1 block (bit i of qh = element i) as bytes 0 or 16, in AVX2
// (AVX-512 does it with a mask register: quant_int8_vnni.cpp).
inline __m256i FifthBits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  // Byte i of the result looks at byte i / 8 of qh, bit i % 8.
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(bits)),
                                             _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2,
                                                              2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(16));
}

// d_w * d_x as a vector, both read straight from memory (broadcast loads cost no ALU work).
inline __m256 Scale(const float* weight_scale, const float* act_scale) {
  return _mm256_mul_ps(_mm256_broadcast_ss(weight_scale), _mm256_broadcast_ss(act_scale));
}

// An activation block of 32 in registers, loaded once per block and shared by every weight row
// of a tile (C of them in decode): the values, -sum and -2 sum in every lane, d broadcast, d sum.
struct Act32Regs {
  __m256i q, neg_sum, neg_sum2;
  __m256 d;
  float d_sum;
};
inline Act32Regs Prepare(const ActBlock32* a) {
  return {LoadBytes(a->q), _mm256_set1_epi32(-a->sum), _mm256_set1_epi32(-2 * a->sum), _mm256_broadcast_ss(&a->d),
          a->d * static_cast<float>(a->sum)};
}
// 256-element blocks are read in pieces as the weight block is unpacked.
inline const ActBlock256* Prepare(const ActBlock256* a) { return a; }

// Each format: Dot<T, R>(block, half, a, acc, extra) adds one weight block's products with R
// prepared activation blocks a[r] into acc[r] (8 partial sums) or extra[r] (a scalar term).

// d * (q - 8): q unsigned, the -8 comes from the activation sum. Each of the 8 lanes starts at
// -sum, so the lanes together start at -8 * sum.
struct I8Q4_0 {
  using Act = ActBlock32;
  static constexpr int kElements = 32, kBytes = sizeof(BlockQ4_0);
  template <class T, int R>
  static void Dot(const uint8_t* block, const float* half, const Act32Regs* a, __m256* acc, float*) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(block);
    const __m256i q = Nibbles(b->qs);
    for (int r = 0; r < R; ++r) {
      const __m256i sum = T::DotBytes(a[r].neg_sum, q, a[r].q);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(_mm256_broadcast_ss(half + b->d), a[r].d), acc[r]);
    }
  }
};

// Both signed: |w| is the unsigned operand and w's sign moves onto the activation (|w| <= 128
// fits a byte as unsigned, even for -128).
struct I8Q8_0 {
  using Act = ActBlock32;
  static constexpr int kElements = 32, kBytes = sizeof(BlockQ8_0);
  template <class T, int R>
  static void Dot(const uint8_t* block, const float* half, const Act32Regs* a, __m256* acc, float*) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(block);
    const __m256i w = LoadBytes(b->qs), magnitude = _mm256_sign_epi8(w, w);
    for (int r = 0; r < R; ++r) {
      const __m256i sum = T::DotBytes(_mm256_setzero_si256(), magnitude, _mm256_sign_epi8(a[r].q, w));
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(_mm256_broadcast_ss(half + b->d), a[r].d), acc[r]);
    }
  }
};

// d * (q - 16), q = 5 bits: lanes start at -2 * sum (-16 * sum in all).
struct I8Q5_0 {
  using Act = ActBlock32;
  static constexpr int kElements = 32, kBytes = sizeof(BlockQ5_0);
  template <class T, int R>
  static void Dot(const uint8_t* block, const float* half, const Act32Regs* a, __m256* acc, float*) {
    const auto* b = reinterpret_cast<const BlockQ5_0*>(block);
    const __m256i q = T::AddFifthBits(Nibbles(b->qs), b->qh);
    for (int r = 0; r < R; ++r) {
      const __m256i sum = T::DotBytes(a[r].neg_sum2, q, a[r].q);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(_mm256_broadcast_ss(half + b->d), a[r].d), acc[r]);
    }
  }
};

// d * q + m: the minimum multiplies the activation block's sum, d_x * sum.
template <bool kFifthBit>
struct I8QMin {
  using Act = ActBlock32;
  using Block = std::conditional_t<kFifthBit, BlockQ5_1, BlockQ4_1>;
  static constexpr int kElements = 32, kBytes = sizeof(Block);
  template <class T, int R>
  static void Dot(const uint8_t* block, const float* half, const Act32Regs* a, __m256* acc, float* extra) {
    const auto* b = reinterpret_cast<const Block*>(block);
    __m256i q = Nibbles(b->qs);
    if constexpr (kFifthBit) q = T::AddFifthBits(q, b->qh);
    const float m = half[b->m];
    for (int r = 0; r < R; ++r) {
      const __m256i sum = T::DotBytes(_mm256_setzero_si256(), q, a[r].q);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(_mm256_broadcast_ss(half + b->d), a[r].d), acc[r]);
      extra[r] += m * a[r].d_sum;
    }
  }
};

// The eight 6-bit scales and minimums of a q4_k / q5_k block (core/quant.h Q4KScaleMin), four
// at a time from the three 32-bit words: bytes sc0..sc7, m0..m7.
inline __m128i KScalesAndMins(const uint8_t* scales) {
  uint32_t u[3];
  std::memcpy(u, scales, 12);
  const uint32_t sc_low = u[0] & 0x3F3F3F3F, m_low = u[1] & 0x3F3F3F3F;
  const uint32_t sc_high = (u[2] & 0x0F0F0F0F) | (((u[0] >> 6) & 0x03030303) << 4);
  const uint32_t m_high = ((u[2] >> 4) & 0x0F0F0F0F) | (((u[1] >> 6) & 0x03030303) << 4);
  return _mm_setr_epi32(static_cast<int32_t>(sc_low), static_cast<int32_t>(sc_high), static_cast<int32_t>(m_low),
                        static_cast<int32_t>(m_high));
}

// i16 lane j of `words` in all 16 lanes (within each 128-bit half, which both hold the same 8).
inline __m256i BroadcastWord(__m256i words, int j) {
  return _mm256_shuffle_epi8(words, _mm256_set1_epi16(static_cast<int16_t>(((2 * j + 1) << 8) | (2 * j))));
}

// d * sc_j * q - dmin * m_j over eight 32-element sub-blocks: sum_j sc_j * (q . x) in integers,
// then the minimums against the activation's per-32 sums.
template <bool kFifthBit>
struct I8QK {
  using Act = ActBlock256;
  using Block = std::conditional_t<kFifthBit, BlockQ5_K, BlockQ4_K>;
  static constexpr int kElements = 256, kBytes = sizeof(Block);
  template <class T, int R>
  static void Dot(const uint8_t* block, const float* half, const ActBlock256* const* a, __m256* acc, float*) {
    const auto* b = reinterpret_cast<const Block*>(block);
    const __m256i both = _mm256_cvtepu8_epi16(KScalesAndMins(b->scales));  // sc0..7 | m0..7 as i16
    const __m256i scales = _mm256_permute2x128_si256(both, both, 0x00);
    const __m128i mins = _mm256_extracti128_si256(both, 1);
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    __m256i sum[R];
    for (int r = 0; r < R; ++r) sum[r] = _mm256_setzero_si256();
    __m256i top;
    if constexpr (kFifthBit) top = LoadBytes(b->qh);
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {  // 64 elements: 32 bytes, low nibbles (sub-block 2c), then high
      const __m256i packed = LoadBytes(b->qs + 32 * c);
      __m256i low = _mm256_and_si256(packed, low_mask), high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
      if constexpr (kFifthBit) {  // bit 2c of qh[l] for the low half, bit 2c + 1 for the high
        const __m256i one = _mm256_set1_epi8(1);
        low = _mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(top, one), 4));
        high = _mm256_or_si256(high, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(top, 1), one), 4));
        top = _mm256_srli_epi16(top, 2);
      }
      const __m256i scale_low = BroadcastWord(scales, 2 * c), scale_high = BroadcastWord(scales, 2 * c + 1);
      for (int r = 0; r < R; ++r) {
        sum[r] = T::DotWords(sum[r], _mm256_maddubs_epi16(low, LoadBytes(a[r]->q + 64 * c)), scale_low);
        sum[r] = T::DotWords(sum[r], _mm256_maddubs_epi16(high, LoadBytes(a[r]->q + 64 * c + 32)), scale_high);
      }
    }
    const __m256 dmin = _mm256_broadcast_ss(half + b->dmin);
    for (int r = 0; r < R; ++r) {
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[r]), Scale(half + b->d, &a[r]->d), acc[r]);
      const __m128i min_sum = _mm_madd_epi16(mins, _mm_loadu_si128(reinterpret_cast<const __m128i*>(a[r]->sums32)));
      const __m256 min_term = _mm256_set_m128(_mm_setzero_ps(), _mm_cvtepi32_ps(min_sum));
      acc[r] = _mm256_fnmadd_ps(min_term, _mm256_mul_ps(dmin, _mm256_broadcast_ss(&a[r]->d)), acc[r]);
    }
  }
};

// d * sc_g * (q - 32) over sixteen 16-element sub-blocks: the -32 enters through the
// activation's per-16 sums, once per block.
struct I8Q6_K {
  using Act = ActBlock256;
  static constexpr int kElements = 256, kBytes = sizeof(BlockQ6_K);
  template <class T, int R>
  static void Dot(const uint8_t* block, const float* half, const ActBlock256* const* a, __m256* acc, float*) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(block);
    const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales));
    const __m256i scales16 = _mm256_cvtepi8_epi16(scales);
    __m256i sum[R];
    for (int r = 0; r < R; ++r) {
      const __m256i offset = _mm256_madd_epi16(scales16, LoadBytes(a[r]->sums16));
      sum[r] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
    }
    const __m256i low_mask = _mm256_set1_epi8(0x0F), top_mask = _mm256_set1_epi8(0x30);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {  // 128 elements: element 32k + l takes quarter k of ql / qh
      const __m256i ql0 = LoadBytes(b->ql + 64 * h), ql1 = LoadBytes(b->ql + 64 * h + 32), qh = LoadBytes(b->qh + 32 * h);
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low_mask), _mm256_and_si256(_mm256_slli_epi16(qh, 4), top_mask)),
          _mm256_or_si256(_mm256_and_si256(ql1, low_mask), _mm256_and_si256(_mm256_slli_epi16(qh, 2), top_mask)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low_mask), _mm256_and_si256(qh, top_mask)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low_mask),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), top_mask))};
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        // Sub-blocks 2g and 2g + 1 (g = 4h + k): their scales in i16 lanes 0-7 and 8-15.
        const char g2 = static_cast<char>(2 * (4 * h + k)), g3 = static_cast<char>(g2 + 1);
        const __m256i scale = _mm256_cvtepi8_epi16(
            _mm_shuffle_epi8(scales, _mm_setr_epi8(g2, g2, g2, g2, g2, g2, g2, g2, g3, g3, g3, g3, g3, g3, g3, g3)));
        for (int r = 0; r < R; ++r) {
          sum[r] = T::DotWords(sum[r], _mm256_maddubs_epi16(q[k], LoadBytes(a[r]->q + 128 * h + 32 * k)), scale);
        }
      }
    }
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[r]), Scale(half + b->d, &a[r]->d), acc[r]);
  }
};

inline float SumF32(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// C weight rows against R activation rows, `blocks` blocks long: out[r * out_stride + j].
template <class T, class Format, int C, int R>
void Int8Tile(const uint8_t* xq, int64_t xq_row_bytes, const uint8_t* w, int64_t w_row_bytes, int64_t blocks, float* out,
              int64_t out_stride) {
  using Act = typename Format::Act;
  __m256 acc[C][R];
  float extra[C][R];
  for (int j = 0; j < C; ++j) {
    for (int r = 0; r < R; ++r) acc[j][r] = _mm256_setzero_ps(), extra[j][r] = 0.0f;
  }
  // The next group of weight rows, requested while this one computes (as in quant_dot_inl.h):
  // the hardware prefetcher loses track of several interleaved streams.
  const uint8_t* ahead = w + C * w_row_bytes;
  const float* half = F16ToF32Table();
  // One prefetch per cache line: blocks smaller than a line ask every kEvery blocks (fewer than
  // 64 bytes apart, so no line is skipped), larger ones once per line they span.
  constexpr int kEvery = Format::kBytes >= 64 ? 1 : 64 / Format::kBytes;
  int countdown = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    decltype(Prepare(static_cast<const Act*>(nullptr))) a[R];
    for (int r = 0; r < R; ++r) a[r] = Prepare(reinterpret_cast<const Act*>(xq + r * xq_row_bytes) + b);
    const int64_t at = b * Format::kBytes;
    const bool fetch = R == 1 && countdown == 0;
    countdown = countdown == 0 ? kEvery - 1 : countdown - 1;
#pragma GCC unroll 4
    for (int j = 0; j < C; ++j) {
      if (fetch) {
        for (int line = 0; line < Format::kBytes; line += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(ahead + j * w_row_bytes + at + line), _MM_HINT_T0);
        }
      }
      Format::template Dot<T, R>(w + j * w_row_bytes + at, half, a, acc[j], extra[j]);
    }
  }
  for (int j = 0; j < C; ++j) {
    for (int r = 0; r < R; ++r) out[r * out_stride + j] = SumF32(acc[j][r]) + extra[j][r];
  }
}

// The Int8DotFn of one format: one activation row against four weight rows at a time (decode),
// or each weight row against groups of up to four activation rows.
template <class T, class Format>
void Int8Dot(const void* xq_bytes, int64_t rows, const void* weights, int64_t w_row_bytes, int64_t count, int64_t k,
             float* out, int64_t out_stride) {
  const auto* xq = static_cast<const uint8_t*>(xq_bytes);
  const auto* w = static_cast<const uint8_t*>(weights);
  const int64_t blocks = k / Format::kElements;
  const int64_t xq_row = blocks * static_cast<int64_t>(sizeof(typename Format::Act));
  if (rows == 1) {
    int64_t j = 0;
    for (; j + 4 <= count; j += 4) Int8Tile<T, Format, 4, 1>(xq, xq_row, w + j * w_row_bytes, w_row_bytes, blocks, out + j, out_stride);
    switch (count - j) {
      case 1: return Int8Tile<T, Format, 1, 1>(xq, xq_row, w + j * w_row_bytes, w_row_bytes, blocks, out + j, out_stride);
      case 2: return Int8Tile<T, Format, 2, 1>(xq, xq_row, w + j * w_row_bytes, w_row_bytes, blocks, out + j, out_stride);
      case 3: return Int8Tile<T, Format, 3, 1>(xq, xq_row, w + j * w_row_bytes, w_row_bytes, blocks, out + j, out_stride);
      default: return;
    }
  }
  for (int64_t j = 0; j < count; ++j) {
    for (int64_t r = 0; r < rows; r += 4) {
      const uint8_t* x = xq + r * xq_row;
      const uint8_t* wj = w + j * w_row_bytes;
      float* o = out + r * out_stride + j;
      switch (std::min<int64_t>(4, rows - r)) {
        case 1: Int8Tile<T, Format, 1, 1>(x, xq_row, wj, w_row_bytes, blocks, o, out_stride); break;
        case 2: Int8Tile<T, Format, 1, 2>(x, xq_row, wj, w_row_bytes, blocks, o, out_stride); break;
        case 3: Int8Tile<T, Format, 1, 3>(x, xq_row, wj, w_row_bytes, blocks, o, out_stride); break;
        default: Int8Tile<T, Format, 1, 4>(x, xq_row, wj, w_row_bytes, blocks, o, out_stride); break;
      }
    }
  }
}

template <class T>
Int8DotKernels MakeInt8DotKernels(const char* isa) {
  Int8DotKernels kernels;
  kernels.isa = isa;
  kernels.quantize32 = QuantizeAct32;
  kernels.quantize256 = QuantizeAct256;
  kernels.q8_0 = Int8Dot<T, I8Q8_0>;
  kernels.q4_0 = Int8Dot<T, I8Q4_0>;
  kernels.q4_1 = Int8Dot<T, I8QMin<false>>;
  kernels.q5_0 = Int8Dot<T, I8Q5_0>;
  kernels.q5_1 = Int8Dot<T, I8QMin<true>>;
  kernels.q4_k = Int8Dot<T, I8QK<false>>;
  kernels.q5_k = Int8Dot<T, I8QK<true>>;
  kernels.q6_k = Int8Dot<T, I8Q6_K>;
  return kernels;
}

}  // namespace
}  // namespace kiln::cpu
