// Block formats: their byte layouts and the scalar reference conversions.
//
// A block format stores a row of a weight in blocks of 32, 128 or 256 elements that share their
// scales; blocks run along the row (the input dimension of a linear), so a row must be whole
// blocks. Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K are bit-exact with GGUF's layouts (quantization.md section
// 3); F8_E4M3 is kiln's own: 128 E4M3 values (the OCP "fn" variant: no infinities, max 448)
// under one f32 scale.
//
// These scalar functions are the reference every kernel is tested against. QuantizeRow is
// bit-exact with ggml's reference quantizers for Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1; for Q4_K, Q5_K
// and Q6_K it is kiln's
// own quantizer (a least-squares refit of each sub-block's scale and minimum) whose output any
// GGUF reader dequantizes the same way.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace kiln {

struct BlockQ8_0 {
  uint16_t d;  // f16
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;  // f16
  uint8_t qs[16];
};
struct BlockQ4_K {
  uint16_t d;     // f16, scale of the 6-bit sub-block scales
  uint16_t dmin;  // f16, scale of the 6-bit sub-block minimums
  uint8_t scales[12];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;  // f16
};
struct BlockQ4_1 {
  uint16_t d;  // f16
  uint16_t m;  // f16, the block's minimum: y = d * q + m
  uint8_t qs[16];
};
// The 5th bit of element j (0..31) is bit j of qh read as a little-endian u32; the low 4 bits
// are packed as in Q4_0 (elements 0-15 in the low nibbles, 16-31 in the high ones).
struct BlockQ5_0 {
  uint16_t d;  // f16
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint16_t d;  // f16
  uint16_t m;  // f16
  uint8_t qh[4];
  uint8_t qs[16];
};
// Q4_K plus a 5th bit: in 64-element chunk c, element l (< 32) takes bit 2c of qh[l], element
// 32 + l bit 2c + 1.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockF8E4M3 {
  float scale;
  uint8_t q[128];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ6_K) == 210 && sizeof(BlockF8E4M3) == 132);
static_assert(sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 && sizeof(BlockQ5_K) == 176);

// The u32 of 5th bits of a Q5_0 / Q5_1 block (qh is not 4-byte aligned within the block).
inline uint32_t Q5HighBits(const uint8_t* qh) {
  return static_cast<uint32_t>(qh[0]) | (static_cast<uint32_t>(qh[1]) << 8) | (static_cast<uint32_t>(qh[2]) << 16) |
         (static_cast<uint32_t>(qh[3]) << 24);
}

// Sub-block j (0..7) of a Q4_K or Q5_K block: its 6-bit scale and minimum.
inline void Q4KScaleMin(const uint8_t* scales, int j, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = scales[j] & 63;
    *min = scales[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

float F8E4M3ToF32(uint8_t bits);
// Round to nearest even, saturating at +-448; NaN -> 0x7F.
uint8_t F32ToF8E4M3(float value);

// out[0, elements) = the values of `elements` (whole blocks for a block type) stored in `dtype`
// at `src`. Every DType but kI32.
void DequantizeRow(DType dtype, const void* src, int64_t elements, float* out);
// Stores `elements` values in `dtype` at `out` (DTypeBytes(dtype, elements) bytes). Every DType
// but kI32; a block type needs whole blocks.
void QuantizeRow(DType dtype, const float* src, int64_t elements, void* out);

}  // namespace kiln
