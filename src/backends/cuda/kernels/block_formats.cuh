// The device code that expands placed block-format weights (block_layout.h) to floats, shared by
// the GEMV, the MoE experts, the embedding gather and the dequantization for tensor-core GEMMs.
//
// Units. A unit is 16 bytes of section 0: 16 elements (Q8_0, F8) or 32 (4-bit formats, as two
// groups of 16: low and high nibbles). Each group of 16 elements is contiguous in the row and
// expands to w_j = scale * v_j - offset with v_j small exact integers (or e4m3 values); offset is
// non-zero only for Q4_K and Q5_K (the minimum) and Q4_1 and Q5_1 (minus the block minimum m:
// scale * v - (-m) is d * q + m, rounded as the reference rounds it). The products scale * v_j and the subtraction are rounded exactly as
// core/quant.cpp's DequantizeRow computes them, so an expanded weight equals the reference bit
// for bit (ExactWeight).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "backends/cuda/kernels/block_layout.h"

namespace kiln::cuda {

// 16 elements of a row: w_j = scale * v_j - offset.
struct BlockGroup {
  float v[16];
  float scale;
  float offset;
};

// The reference's rounding: scale * v, then minus the offset (never contracted to an FMA).
__device__ __forceinline__ float ExactWeight(const BlockGroup& g, int j) { return __fsub_rn(__fmul_rn(g.scale, g.v[j]), g.offset); }

// The four bytes of `word`, each an unsigned value, minus `bias`, as exact floats. A byte b placed
// in the low mantissa bits of 2^23 (0x4B0000bb) is the float 2^23 + b, so one byte permute and one
// subtraction replace an integer-to-float conversion (a quarter-rate instruction).
__device__ __forceinline__ void BytesToFloats(uint32_t word, float bias, float* out) {
  const float base = 8388608.0f + bias;
  out[0] = __int_as_float(static_cast<int>(__byte_perm(word, 0x4B000000u, 0x7440))) - base;
  out[1] = __int_as_float(static_cast<int>(__byte_perm(word, 0x4B000000u, 0x7441))) - base;
  out[2] = __int_as_float(static_cast<int>(__byte_perm(word, 0x4B000000u, 0x7442))) - base;
  out[3] = __int_as_float(static_cast<int>(__byte_perm(word, 0x4B000000u, 0x7443))) - base;
}

__device__ __forceinline__ uint4 LoadStreamed(const uint8_t* section, int64_t index) {
  return __ldcs(reinterpret_cast<const uint4*>(section) + index);  // weights stream through once
}
__device__ __forceinline__ float LoadF16(const uint8_t* section, int64_t index) {
  return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(section) + index)));
}

template <WeightType F>
struct BlockFormat;

// Four 5th bits (bits 0-3 of `bits`) moved to bit 4 of four bytes, one per byte.
__device__ __forceinline__ uint32_t FifthBits(uint32_t bits) {
  return ((bits & 1u) | ((bits & 2u) << 7) | ((bits & 4u) << 14) | ((bits & 8u) << 21)) << 4;
}

// Byte i of the 16-byte metadata of a K-quant block (d | dmin << 16, then scales[0..11]).
__device__ __forceinline__ uint32_t KScaleByte(const uint4& meta, int i) {
  const uint32_t word = i < 4 ? meta.y : i < 8 ? meta.z : meta.w;
  return (word >> (8 * (i & 3))) & 0xFFu;
}

// Sub-block j's scale d * sc and offset dmin * m of a Q4_K / Q5_K block, as Q4KScaleMin in
// core/quant.h and the reference's products.
__device__ __forceinline__ void KScaleOffset(const uint4& meta, int j, float* scale, float* offset) {
  uint32_t sc, m;
  if (j < 4) {
    sc = KScaleByte(meta, j) & 63u;
    m = KScaleByte(meta, j + 4) & 63u;
  } else {
    sc = (KScaleByte(meta, j + 4) & 0xFu) | ((KScaleByte(meta, j - 4) >> 6) << 4);
    m = (KScaleByte(meta, j + 4) >> 4) | ((KScaleByte(meta, j) >> 6) << 4);
  }
  const float d = __half2float(__ushort_as_half(static_cast<unsigned short>(meta.x & 0xFFFFu)));
  const float dmin = __half2float(__ushort_as_half(static_cast<unsigned short>(meta.x >> 16)));
  *scale = __fmul_rn(d, static_cast<float>(sc));
  *offset = __fmul_rn(dmin, static_cast<float>(m));
}

// The low f16 of a 4-byte (d, m) word and the negated high one.
__device__ __forceinline__ float LowHalf(uint32_t word) { return __half2float(__ushort_as_half(static_cast<unsigned short>(word & 0xFFFFu))); }
__device__ __forceinline__ float HighHalf(uint32_t word) { return __half2float(__ushort_as_half(static_cast<unsigned short>(word >> 16))); }

// Q8_0: a unit is half a block; v = q.
template <>
struct BlockFormat<WeightType::kQ8_0> {
  static constexpr int kUnitElements = 16, kGroups = 1;
  static constexpr bool kOffset = false;
  struct Unit {
    uint4 q;
    float d;
  };
  __device__ static Unit Load(const BlockMatrix& m, int64_t row, int64_t unit) {
    return {LoadStreamed(m.section[0], row * m.blocks_per_row * 2 + unit), LoadF16(m.section[1], row * m.blocks_per_row + unit / 2)};
  }
  __device__ static int64_t Offset(int64_t unit, int /*group*/) { return 16 * unit; }
  __device__ static void Expand(const Unit& u, int64_t /*unit*/, int /*group*/, BlockGroup& g) {
    // i8 q + 128 is the byte with its top bit flipped.
    BytesToFloats(u.q.x ^ 0x80808080u, 128.0f, g.v);
    BytesToFloats(u.q.y ^ 0x80808080u, 128.0f, g.v + 4);
    BytesToFloats(u.q.z ^ 0x80808080u, 128.0f, g.v + 8);
    BytesToFloats(u.q.w ^ 0x80808080u, 128.0f, g.v + 12);
    g.scale = u.d;
    g.offset = 0.0f;
  }
};

// Q4_0: a unit is a block; group 0 the low nibbles (elements 0-15), group 1 the high (16-31).
template <>
struct BlockFormat<WeightType::kQ4_0> {
  static constexpr int kUnitElements = 32, kGroups = 2;
  static constexpr bool kOffset = false;
  struct Unit {
    uint4 q;
    float d;
  };
  __device__ static Unit Load(const BlockMatrix& m, int64_t row, int64_t unit) {
    return {LoadStreamed(m.section[0], row * m.blocks_per_row + unit), LoadF16(m.section[1], row * m.blocks_per_row + unit)};
  }
  __device__ static int64_t Offset(int64_t unit, int group) { return 32 * unit + 16 * group; }
  __device__ static void Expand(const Unit& u, int64_t /*unit*/, int group, BlockGroup& g) {
    const int shift = 4 * group;
    BytesToFloats((u.q.x >> shift) & 0x0F0F0F0Fu, 8.0f, g.v);
    BytesToFloats((u.q.y >> shift) & 0x0F0F0F0Fu, 8.0f, g.v + 4);
    BytesToFloats((u.q.z >> shift) & 0x0F0F0F0Fu, 8.0f, g.v + 8);
    BytesToFloats((u.q.w >> shift) & 0x0F0F0F0Fu, 8.0f, g.v + 12);
    g.scale = u.d;
    g.offset = 0.0f;
  }
};

// Q4_K: unit v (0..7) of a block is qs bytes [16v, 16v + 16): chunk c = v / 2 of 64 elements,
// bytes l = 16 (v % 2) + j. Low nibbles are elements 64c + l (sub-block 2c), high nibbles
// 64c + 32 + l (sub-block 2c + 1). w = d sc q - dmin m.
template <>
struct BlockFormat<WeightType::kQ4_K> {
  static constexpr int kUnitElements = 32, kGroups = 2;
  static constexpr bool kOffset = true;
  struct Unit {
    uint4 q;
    uint4 meta;  // d | dmin << 16, then scales[0..11]
  };
  __device__ static Unit Load(const BlockMatrix& m, int64_t row, int64_t unit) {
    return {LoadStreamed(m.section[0], row * m.blocks_per_row * 8 + unit),
            __ldg(reinterpret_cast<const uint4*>(m.section[1]) + row * m.blocks_per_row + unit / 8)};
  }
  __device__ static int64_t Offset(int64_t unit, int group) {
    const int64_t v = unit & 7;
    return 256 * (unit >> 3) + 64 * (v >> 1) + 16 * (v & 1) + 32 * group;
  }
  __device__ static void Expand(const Unit& u, int64_t unit, int group, BlockGroup& g) {
    const int shift = 4 * group;
    BytesToFloats((u.q.x >> shift) & 0x0F0F0F0Fu, 0.0f, g.v);
    BytesToFloats((u.q.y >> shift) & 0x0F0F0F0Fu, 0.0f, g.v + 4);
    BytesToFloats((u.q.z >> shift) & 0x0F0F0F0Fu, 0.0f, g.v + 8);
    BytesToFloats((u.q.w >> shift) & 0x0F0F0F0Fu, 0.0f, g.v + 12);
    KScaleOffset(u.meta, 2 * static_cast<int>((unit & 7) >> 1) + group, &g.scale, &g.offset);
  }
};

// Q6_K: unit v (0..7) of a block is ql bytes [16v, 16v + 16): half n = v / 4, quarter q = v % 4.
// Low nibbles are elements 128n + 16q + j, high nibbles 128n + 16q + 64 + j; their top two bits
// are qh bytes 32n + 16 (q % 2) + j at bit 2 (q / 2) (+ 4 for the high nibbles), their scales
// scales[8n + q] and scales[8n + q + 4]. w = d sc (q6 - 32).
template <>
struct BlockFormat<WeightType::kQ6_K> {
  static constexpr int kUnitElements = 32, kGroups = 2;
  static constexpr bool kOffset = false;
  struct Unit {
    uint4 ql;
    uint4 qh;
    float d;
    int scale_low, scale_high;
  };
  __device__ static Unit Load(const BlockMatrix& m, int64_t row, int64_t unit) {
    const int64_t block = row * m.blocks_per_row + (unit >> 3);
    const int v = static_cast<int>(unit & 7), n = v >> 2, q = v & 3;
    const int8_t* scales = reinterpret_cast<const int8_t*>(m.section[2]) + block * 16 + 8 * n + q;
    return {LoadStreamed(m.section[0], row * m.blocks_per_row * 8 + unit),
            __ldg(reinterpret_cast<const uint4*>(m.section[1]) + block * 4 + 2 * n + (q & 1)), LoadF16(m.section[3], block),
            __ldg(scales), __ldg(scales + 4)};
  }
  __device__ static int64_t Offset(int64_t unit, int group) {
    const int64_t v = unit & 7;
    return 256 * (unit >> 3) + 128 * (v >> 2) + 16 * (v & 3) + 64 * group;
  }
  __device__ static void Expand(const Unit& u, int64_t unit, int group, BlockGroup& g) {
    const int low_shift = 4 * group, high_shift = 2 * static_cast<int>((unit & 3) >> 1) + 4 * group;
    auto six = [&](uint32_t ql, uint32_t qh) { return ((ql >> low_shift) & 0x0F0F0F0Fu) | (((qh >> high_shift) & 0x03030303u) << 4); };
    BytesToFloats(six(u.ql.x, u.qh.x), 32.0f, g.v);
    BytesToFloats(six(u.ql.y, u.qh.y), 32.0f, g.v + 4);
    BytesToFloats(six(u.ql.z, u.qh.z), 32.0f, g.v + 8);
    BytesToFloats(six(u.ql.w, u.qh.w), 32.0f, g.v + 12);
    g.scale = __fmul_rn(u.d, static_cast<float>(group ? u.scale_high : u.scale_low));
    g.offset = 0.0f;
  }
};

// Q4_1: a unit is a block, nibbles as Q4_0; w = d q + m, as scale d and offset -m.
template <>
struct BlockFormat<WeightType::kQ4_1> {
  static constexpr int kUnitElements = 32, kGroups = 2;
  static constexpr bool kOffset = true;
  struct Unit {
    uint4 q;
    uint32_t dm;  // d | m << 16
  };
  __device__ static Unit Load(const BlockMatrix& m, int64_t row, int64_t unit) {
    const int64_t block = row * m.blocks_per_row + unit;
    return {LoadStreamed(m.section[0], block), __ldg(reinterpret_cast<const uint32_t*>(m.section[1]) + block)};
  }
  __device__ static int64_t Offset(int64_t unit, int group) { return 32 * unit + 16 * group; }
  __device__ static void Expand(const Unit& u, int64_t /*unit*/, int group, BlockGroup& g) {
    const int shift = 4 * group;
    BytesToFloats((u.q.x >> shift) & 0x0F0F0F0Fu, 0.0f, g.v);
    BytesToFloats((u.q.y >> shift) & 0x0F0F0F0Fu, 0.0f, g.v + 4);
    BytesToFloats((u.q.z >> shift) & 0x0F0F0F0Fu, 0.0f, g.v + 8);
    BytesToFloats((u.q.w >> shift) & 0x0F0F0F0Fu, 0.0f, g.v + 12);
    g.scale = LowHalf(u.dm);
    g.offset = -HighHalf(u.dm);
  }
};

// Q5_0 / Q5_1: a unit is a block, nibbles as Q4_0; element e's 5th bit is bit e of qh (group 0:
// bits 0-15, group 1: bits 16-31). Q5_0: w = d (q - 16); Q5_1: w = d q + m.
template <bool kWithMin>
struct Q5Format {
  static constexpr int kUnitElements = 32, kGroups = 2;
  static constexpr bool kOffset = kWithMin;
  struct Unit {
    uint4 q;
    uint32_t dm;  // d (| m << 16 for Q5_1)
    uint32_t qh;
  };
  __device__ static Unit Load(const BlockMatrix& m, int64_t row, int64_t unit) {
    const int64_t block = row * m.blocks_per_row + unit;
    const uint32_t dm = kWithMin ? __ldg(reinterpret_cast<const uint32_t*>(m.section[1]) + block)
                                 : __ldg(reinterpret_cast<const unsigned short*>(m.section[1]) + block);
    return {LoadStreamed(m.section[0], block), dm, __ldg(reinterpret_cast<const uint32_t*>(m.section[2]) + block)};
  }
  __device__ static int64_t Offset(int64_t unit, int group) { return 32 * unit + 16 * group; }
  __device__ static void Expand(const Unit& u, int64_t /*unit*/, int group, BlockGroup& g) {
    const int shift = 4 * group;
    const uint32_t high = u.qh >> (16 * group);
    const float bias = kWithMin ? 0.0f : 16.0f;
    BytesToFloats(((u.q.x >> shift) & 0x0F0F0F0Fu) | FifthBits(high), bias, g.v);
    BytesToFloats(((u.q.y >> shift) & 0x0F0F0F0Fu) | FifthBits(high >> 4), bias, g.v + 4);
    BytesToFloats(((u.q.z >> shift) & 0x0F0F0F0Fu) | FifthBits(high >> 8), bias, g.v + 8);
    BytesToFloats(((u.q.w >> shift) & 0x0F0F0F0Fu) | FifthBits(high >> 12), bias, g.v + 12);
    g.scale = LowHalf(u.dm);
    g.offset = kWithMin ? -HighHalf(u.dm) : 0.0f;
  }
};
template <>
struct BlockFormat<WeightType::kQ5_0> : Q5Format<false> {};
template <>
struct BlockFormat<WeightType::kQ5_1> : Q5Format<true> {};

// Q5_K: units as Q4_K (unit v of a block: chunk c = v / 2, qs bytes l = 16 (v % 2) + j); the 5th
// bit of the low nibble is bit 2c of qh[l], of the high nibble bit 2c + 1.
template <>
struct BlockFormat<WeightType::kQ5_K> {
  static constexpr int kUnitElements = 32, kGroups = 2;
  static constexpr bool kOffset = true;
  struct Unit {
    uint4 q;
    uint4 meta;  // d | dmin << 16, then scales[0..11]
    uint4 qh;    // qh bytes [16 (v % 2), 16 (v % 2) + 16)
  };
  __device__ static Unit Load(const BlockMatrix& m, int64_t row, int64_t unit) {
    const int64_t block = row * m.blocks_per_row + unit / 8;
    return {LoadStreamed(m.section[0], row * m.blocks_per_row * 8 + unit), __ldg(reinterpret_cast<const uint4*>(m.section[1]) + block),
            __ldg(reinterpret_cast<const uint4*>(m.section[2]) + 2 * block + (unit & 1))};
  }
  __device__ static int64_t Offset(int64_t unit, int group) { return BlockFormat<WeightType::kQ4_K>::Offset(unit, group); }
  __device__ static void Expand(const Unit& u, int64_t unit, int group, BlockGroup& g) {
    const int shift = 4 * group, chunk = static_cast<int>((unit & 7) >> 1), bit = 2 * chunk + group;
    auto five = [&](uint32_t q, uint32_t qh) { return ((q >> shift) & 0x0F0F0F0Fu) | (((qh >> bit) & 0x01010101u) << 4); };
    BytesToFloats(five(u.q.x, u.qh.x), 0.0f, g.v);
    BytesToFloats(five(u.q.y, u.qh.y), 0.0f, g.v + 4);
    BytesToFloats(five(u.q.z, u.qh.z), 0.0f, g.v + 8);
    BytesToFloats(five(u.q.w, u.qh.w), 0.0f, g.v + 12);
    KScaleOffset(u.meta, 2 * chunk + group, &g.scale, &g.offset);
  }
};

// F8_E4M3: a unit is 16 of a block's 128 values; the hardware converts pairs of e4m3 to f16
// exactly (every e4m3 value is an f16 value), f16 -> f32 is exact.
template <>
struct BlockFormat<WeightType::kF8E4M3> {
  static constexpr int kUnitElements = 16, kGroups = 1;
  static constexpr bool kOffset = false;
  struct Unit {
    uint4 q;
    float scale;
  };
  __device__ static Unit Load(const BlockMatrix& m, int64_t row, int64_t unit) {
    return {LoadStreamed(m.section[0], row * m.blocks_per_row * 8 + unit),
            __ldg(reinterpret_cast<const float*>(m.section[1]) + row * m.blocks_per_row + unit / 8)};
  }
  __device__ static int64_t Offset(int64_t unit, int /*group*/) { return 16 * unit; }
  __device__ static void Pairs(uint32_t word, float* out) {
    const __half2 low = __half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(word & 0xFFFFu), __NV_E4M3));
    const __half2 high = __half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(word >> 16), __NV_E4M3));
    const float2 a = __half22float2(low), b = __half22float2(high);
    out[0] = a.x;
    out[1] = a.y;
    out[2] = b.x;
    out[3] = b.y;
  }
  __device__ static void Expand(const Unit& u, int64_t /*unit*/, int /*group*/, BlockGroup& g) {
    Pairs(u.q.x, g.v);
    Pairs(u.q.y, g.v + 4);
    Pairs(u.q.z, g.v + 8);
    Pairs(u.q.w, g.v + 12);
    g.scale = u.scale;
    g.offset = 0.0f;
  }
};

}  // namespace kiln::cuda
