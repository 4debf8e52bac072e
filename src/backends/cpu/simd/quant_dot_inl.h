// The block-format dot products of quant_dot.h, written once over a vector type and included by
// each ISA's translation unit (quant_dot_avx2.cpp, quant_dot_avx512.cpp), which compiles them
// with its own flags and supplies the vector operations as a traits struct V:
//   kLanes                        f32 lanes per vector (8 or 16)
//   F, I                          vectors of f32 and of i32 lanes
//   LoadU8(p), LoadI8(p)          kLanes bytes, zero / sign extended to i32 lanes
//   And(i, mask), Or(i, j), Sub(i, value), ShiftLeft<n>(i), ShiftRight<n>(i)   (logical)
//   ToFloat(i) (value), BitsToFloat(i) (reinterpret), Set1(f), Zero(), Load(const float*)
//   Add, Mul, Fma(a, b, c) = a*b + c, FmSub(a, b, c) = a*b - c, Sum(f) (horizontal)
//   Broadcast(const float*)       one f32 from memory in every lane
//   HalfToFloat(uint16_t)         an f16 scale to f32
// Everything here has internal linkage: the two ISAs' copies must never be merged by the linker.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backends/cpu/simd/quant_dot.h"
#include "core/quant.h"

namespace kiln::cpu {
namespace {

// Every f16 value as f32 (256 KiB, built on first use). A block's scale then costs two loads
// (its bits, and the f32 broadcast straight from memory) instead of an insert, a conversion and
// a broadcast on the vector ports, which 32-element blocks would otherwise spend a fifth of
// their work on.
template <class V>
const float* HalfTable() {
  static const std::vector<float> table = [] {
    std::vector<float> values(65536);
    for (uint32_t bits = 0; bits < 65536; ++bits) values[bits] = V::HalfToFloat(static_cast<uint16_t>(bits));
    return values;
  }();
  return table.data();
}

// Each format calls sink(e, w) for every run of kLanes dequantized weights, w = elements
// [e, e + kLanes) of the block, computed exactly as DequantizeRow computes them. `half` is
// HalfTable<V>().

struct Q8_0Format {
  static constexpr int kElements = 32, kBytes = sizeof(BlockQ8_0);
  template <class V, class Sink>
  static void Decode(const uint8_t* block, const float* half, Sink&& sink) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(block);
    const typename V::F d = V::Broadcast(half + b->d);
#pragma GCC unroll 8
    for (int e = 0; e < 32; e += V::kLanes) sink(e, V::Mul(V::ToFloat(V::LoadI8(b->qs + e)), d));
  }
};

struct Q4_0Format {
  static constexpr int kElements = 32, kBytes = sizeof(BlockQ4_0);
  template <class V, class Sink>
  static void Decode(const uint8_t* block, const float* half, Sink&& sink) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(block);
    // d * (q - 8) as q * d - 8d in one rounding: the same f32 as the reference (8d is exact).
    const typename V::F d = V::Broadcast(half + b->d), d8 = V::Mul(d, V::Set1(8.0f));
#pragma GCC unroll 8
    for (int e = 0; e < 16; e += V::kLanes) {  // low nibbles are elements 0-15, high ones 16-31
      const typename V::I packed = V::LoadU8(b->qs + e);
      sink(e, V::FmSub(V::ToFloat(V::And(packed, 0xF)), d, d8));
      sink(e + 16, V::FmSub(V::ToFloat(V::template ShiftRight<4>(packed)), d, d8));
    }
  }
};

// The 5th bits of a Q5_0 / Q5_1 block as bytes (0 or 16), element order: four lookups of eight
// bytes replace 32 single-bit extractions.
inline const uint64_t* BitsToSixteens() {
  static const auto table = [] {
    std::array<uint64_t, 256> values{};
    for (int byte = 0; byte < 256; ++byte) {
      for (int bit = 0; bit < 8; ++bit) values[byte] |= static_cast<uint64_t>(((byte >> bit) & 1) << 4) << (8 * bit);
    }
    return values;
  }();
  return table.data();
}
inline void ExpandQ5HighBits(const uint8_t* qh, uint8_t* sixteens) {
  const uint64_t* table = BitsToSixteens();
  for (int i = 0; i < 4; ++i) std::memcpy(sixteens + 8 * i, &table[qh[i]], 8);
}

struct Q4_1Format {
  static constexpr int kElements = 32, kBytes = sizeof(BlockQ4_1);
  template <class V, class Sink>
  static void Decode(const uint8_t* block, const float* half, Sink&& sink) {
    const auto* b = reinterpret_cast<const BlockQ4_1*>(block);
    const typename V::F d = V::Broadcast(half + b->d), m = V::Broadcast(half + b->m);
#pragma GCC unroll 8
    for (int e = 0; e < 16; e += V::kLanes) {
      const typename V::I packed = V::LoadU8(b->qs + e);
      sink(e, V::Fma(V::ToFloat(V::And(packed, 0xF)), d, m));
      sink(e + 16, V::Fma(V::ToFloat(V::template ShiftRight<4>(packed)), d, m));
    }
  }
};

// The 5-bit values of a Q5_0 / Q5_1 block, kLanes at a time: emit(e, low, high) with elements
// [e, e + kLanes) in `low` and [e + 16, e + 16 + kLanes) in `high`, as i32 lanes.
template <class V, class Emit>
void ForEachQ5Lanes(const uint8_t* qs, const uint8_t* qh, Emit&& emit) {
  alignas(32) uint8_t high_bits[32];
  ExpandQ5HighBits(qh, high_bits);
#pragma GCC unroll 8
  for (int e = 0; e < 16; e += V::kLanes) {
    const typename V::I packed = V::LoadU8(qs + e);
    emit(e, V::Or(V::And(packed, 0xF), V::LoadU8(high_bits + e)),
         V::Or(V::template ShiftRight<4>(packed), V::LoadU8(high_bits + 16 + e)));
  }
}

struct Q5_0Format {
  static constexpr int kElements = 32, kBytes = sizeof(BlockQ5_0);
  template <class V, class Sink>
  static void Decode(const uint8_t* block, const float* half, Sink&& sink) {
    const auto* b = reinterpret_cast<const BlockQ5_0*>(block);
    // d * (q - 16) as q * d - 16d in one rounding: the same f32 as the reference (16d is exact).
    const typename V::F d = V::Broadcast(half + b->d), d16 = V::Mul(d, V::Set1(16.0f));
    ForEachQ5Lanes<V>(b->qs, b->qh, [&](int e, typename V::I low, typename V::I high) {
      sink(e, V::FmSub(V::ToFloat(low), d, d16));
      sink(e + 16, V::FmSub(V::ToFloat(high), d, d16));
    });
  }
};

struct Q5_1Format {
  static constexpr int kElements = 32, kBytes = sizeof(BlockQ5_1);
  template <class V, class Sink>
  static void Decode(const uint8_t* block, const float* half, Sink&& sink) {
    const auto* b = reinterpret_cast<const BlockQ5_1*>(block);
    const typename V::F d = V::Broadcast(half + b->d), m = V::Broadcast(half + b->m);
    ForEachQ5Lanes<V>(b->qs, b->qh, [&](int e, typename V::I low, typename V::I high) {
      sink(e, V::Fma(V::ToFloat(low), d, m));
      sink(e + 16, V::Fma(V::ToFloat(high), d, m));
    });
  }
};

struct Q4_KFormat {
  static constexpr int kElements = 256, kBytes = sizeof(BlockQ4_K);
  template <class V, class Sink>
  static void Decode(const uint8_t* block, const float* half, Sink&& sink) {
    const auto* b = reinterpret_cast<const BlockQ4_K*>(block);
    const float d = half[b->d], dmin = half[b->dmin];
#pragma GCC unroll 4
    for (int chunk = 0; chunk < 4; ++chunk) {  // 64 elements: 32 bytes, low nibbles then high
      uint8_t sc0, m0, sc1, m1;
      Q4KScaleMin(b->scales, 2 * chunk, &sc0, &m0);
      Q4KScaleMin(b->scales, 2 * chunk + 1, &sc1, &m1);
      const typename V::F d0 = V::Set1(d * sc0), o0 = V::Set1(dmin * m0), d1 = V::Set1(d * sc1), o1 = V::Set1(dmin * m1);
      const uint8_t* qs = b->qs + 32 * chunk;
#pragma GCC unroll 4
      for (int l = 0; l < 32; l += V::kLanes) {
        const typename V::I packed = V::LoadU8(qs + l);
        sink(64 * chunk + l, V::FmSub(V::ToFloat(V::And(packed, 0xF)), d0, o0));
        sink(64 * chunk + 32 + l, V::FmSub(V::ToFloat(V::template ShiftRight<4>(packed)), d1, o1));
      }
    }
  }
};

struct Q5_KFormat {
  static constexpr int kElements = 256, kBytes = sizeof(BlockQ5_K);
  template <class V, class Sink>
  static void Decode(const uint8_t* block, const float* half, Sink&& sink) {
    const auto* b = reinterpret_cast<const BlockQ5_K*>(block);
    const float d = half[b->d], dmin = half[b->dmin];
    float scale[8], offset[8];
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      Q4KScaleMin(b->scales, j, &sc, &m);
      scale[j] = d * sc;
      offset[j] = dmin * m;
    }
    // Lanes of qh outer, chunks inner: each chunk takes the next two bits of the same qh bytes,
    // so the bits move down by two per chunk and are read at fixed positions 0 and 1.
#pragma GCC unroll 4
    for (int l = 0; l < 32; l += V::kLanes) {
      typename V::I top = V::LoadU8(b->qh + l);
#pragma GCC unroll 4
      for (int chunk = 0; chunk < 4; ++chunk) {
        const typename V::I packed = V::LoadU8(b->qs + 32 * chunk + l);
        const typename V::I low = V::Or(V::And(packed, 0xF), V::template ShiftLeft<4>(V::And(top, 1)));
        const typename V::I high = V::Or(V::template ShiftRight<4>(packed), V::template ShiftLeft<3>(V::And(top, 2)));
        sink(64 * chunk + l, V::FmSub(V::ToFloat(low), V::Set1(scale[2 * chunk]), V::Set1(offset[2 * chunk])));
        sink(64 * chunk + 32 + l, V::FmSub(V::ToFloat(high), V::Set1(scale[2 * chunk + 1]), V::Set1(offset[2 * chunk + 1])));
        top = V::template ShiftRight<2>(top);
      }
    }
  }
};

struct Q6_KFormat {
  static constexpr int kElements = 256, kBytes = sizeof(BlockQ6_K);
  template <class V, class Sink>
  static void Decode(const uint8_t* block, const float* half, Sink&& sink) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(block);
    const float d = half[b->d];
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = b->ql + 64 * half;
      const uint8_t* qh = b->qh + 32 * half;
      const int8_t* sc = b->scales + 8 * half;
#pragma GCC unroll 4
      for (int l = 0; l < 32; l += V::kLanes) {
        // Element l + 32 * quarter: low 4 bits from ql[l] / ql[l + 32] (low, then high
        // nibbles), top 2 bits from bits 2 * quarter of qh[l], moved straight to bits 4-5.
        const typename V::I low = V::LoadU8(ql + l), high = V::LoadU8(ql + l + 32), top = V::LoadU8(qh + l);
        const typename V::I q0 = V::Or(V::And(low, 0xF), V::And(V::template ShiftLeft<4>(top), 0x30));
        const typename V::I q1 = V::Or(V::And(high, 0xF), V::And(V::template ShiftLeft<2>(top), 0x30));
        const typename V::I q2 = V::Or(V::template ShiftRight<4>(low), V::And(top, 0x30));
        const typename V::I q3 = V::Or(V::template ShiftRight<4>(high), V::And(V::template ShiftRight<2>(top), 0x30));
        const int is = l / 16;  // 16-element sub-block within the quarter
        const int at = 128 * half + l;
        sink(at, V::Mul(V::Set1(d * static_cast<float>(sc[is])), V::ToFloat(V::Sub(q0, 32))));
        sink(at + 32, V::Mul(V::Set1(d * static_cast<float>(sc[is + 2])), V::ToFloat(V::Sub(q1, 32))));
        sink(at + 64, V::Mul(V::Set1(d * static_cast<float>(sc[is + 4])), V::ToFloat(V::Sub(q2, 32))));
        sink(at + 96, V::Mul(V::Set1(d * static_cast<float>(sc[is + 6])), V::ToFloat(V::Sub(q3, 32))));
      }
    }
  }
};

// E4M3 -> f32 by moving bits: sign to bit 31, exponent and mantissa (7 bits) to bits 20-26. That
// reads as an f32 of the same mantissa whose exponent is 120 too small (bias 127 vs 7), for
// normal and subnormal values alike, so one multiply by 2^120 (folded into the block scale)
// finishes it. 0x7F/0xFF (NaN) read as 480: the quantizer writes them only for NaN inputs.
struct F8E4M3Format {
  static constexpr int kElements = 128, kBytes = sizeof(BlockF8E4M3);
  template <class V>
  static typename V::F Unscaled(const uint8_t* q) {
    const typename V::I t = V::LoadU8(q);
    return V::BitsToFloat(V::Or(V::And(V::template ShiftLeft<24>(t), INT32_MIN), V::template ShiftLeft<20>(V::And(t, 0x7F))));
  }
  template <class V, class Sink>
  static void Decode(const uint8_t* block, const float*, Sink&& sink) {
    const auto* b = reinterpret_cast<const BlockF8E4M3*>(block);
    const float scale = b->scale;
    if (std::fabs(scale) < 0x1p7f) {  // scale * 2^120 is a finite f32 and exact: one multiply
      const typename V::F s = V::Set1(scale * 0x1p120f);
#pragma GCC unroll 16
      for (int e = 0; e < 128; e += V::kLanes) sink(e, V::Mul(Unscaled<V>(b->q + e), s));
    } else {
      const typename V::F s = V::Set1(scale), rebias = V::Set1(0x1p120f);
      for (int e = 0; e < 128; e += V::kLanes) sink(e, V::Mul(V::Mul(Unscaled<V>(b->q + e), rebias), s));
    }
  }
};

// C weight rows (w + j * w_row_bytes) against R activation rows (x + r * x_stride), `blocks`
// blocks long: out[r * out_stride + j]. C * R accumulators, each block decoded once.
template <class V, class Format, int C, int R>
void Tile(const float* x, int64_t x_stride, const uint8_t* w, int64_t w_row_bytes, int64_t blocks, float* out,
          int64_t out_stride) {
  using F = typename V::F;
  F acc[C][R];
  for (int j = 0; j < C; ++j) {
    for (int r = 0; r < R; ++r) acc[j][r] = V::Zero();
  }
  // The next group of weight rows (MatVec walks them in order): requested while this one
  // computes, as the hardware prefetcher loses track of several interleaved streams.
  const uint8_t* ahead = w + C * w_row_bytes;
  const float* half = HalfTable<V>();
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * Format::kElements;
    const int64_t at = b * Format::kBytes;
#pragma GCC unroll 4
    for (int j = 0; j < C; ++j) {
      if constexpr (R == 1) _mm_prefetch(reinterpret_cast<const char*>(ahead + j * w_row_bytes + at), _MM_HINT_T0);
      Format::template Decode<V>(w + j * w_row_bytes + at, half, [&](int e, F weights) {
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) acc[j][r] = V::Fma(weights, V::Load(xb + r * x_stride + e), acc[j][r]);
      });
    }
  }
  for (int j = 0; j < C; ++j) {
    for (int r = 0; r < R; ++r) out[r * out_stride + j] = V::Sum(acc[j][r]);
  }
}

template <class V, class Format, int C>
void TileRows(const float* x, int64_t x_stride, int64_t rows, const uint8_t* w, int64_t w_row_bytes, int64_t blocks,
              float* out, int64_t out_stride) {
  switch (rows) {
    case 1: return Tile<V, Format, C, 1>(x, x_stride, w, w_row_bytes, blocks, out, out_stride);
    case 2: return Tile<V, Format, C, 2>(x, x_stride, w, w_row_bytes, blocks, out, out_stride);
    case 3: return Tile<V, Format, C, 3>(x, x_stride, w, w_row_bytes, blocks, out, out_stride);
    default: return Tile<V, Format, C, 4>(x, x_stride, w, w_row_bytes, blocks, out, out_stride);
  }
}

// The QuantDotFn of one format: one activation row against four weight streams at a time, or
// groups of four activation rows against one weight row at a time.
template <class V, class Format>
void QuantDot(const float* x, int64_t x_stride, int64_t rows, const void* weights, int64_t w_row_bytes, int64_t count,
              int64_t k, float* out, int64_t out_stride) {
  const uint8_t* w = static_cast<const uint8_t*>(weights);
  const int64_t blocks = k / Format::kElements;
  if (rows == 1) {
    int64_t j = 0;
    for (; j + 4 <= count; j += 4) Tile<V, Format, 4, 1>(x, x_stride, w + j * w_row_bytes, w_row_bytes, blocks, out + j, out_stride);
    switch (count - j) {
      case 1: return Tile<V, Format, 1, 1>(x, x_stride, w + j * w_row_bytes, w_row_bytes, blocks, out + j, out_stride);
      case 2: return Tile<V, Format, 2, 1>(x, x_stride, w + j * w_row_bytes, w_row_bytes, blocks, out + j, out_stride);
      case 3: return Tile<V, Format, 3, 1>(x, x_stride, w + j * w_row_bytes, w_row_bytes, blocks, out + j, out_stride);
      default: return;
    }
  }
  for (int64_t j = 0; j < count; ++j) {
    for (int64_t r = 0; r < rows; r += 4) {
      TileRows<V, Format, 1>(x + r * x_stride, x_stride, std::min<int64_t>(4, rows - r), w + j * w_row_bytes, w_row_bytes,
                             blocks, out + r * out_stride + j, out_stride);
    }
  }
}

template <class V>
QuantDotKernels MakeQuantDotKernels() {
  return {QuantDot<V, Q8_0Format>, QuantDot<V, Q4_0Format>, QuantDot<V, Q4_KFormat>, QuantDot<V, Q6_KFormat>,
          QuantDot<V, F8E4M3Format>, QuantDot<V, Q5_0Format>, QuantDot<V, Q5_1Format>, QuantDot<V, Q4_1Format>,
          QuantDot<V, Q5_KFormat>};
}

}  // namespace
}  // namespace kiln::cpu
