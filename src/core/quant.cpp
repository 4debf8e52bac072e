#include "core/quant.h"

#include <algorithm>
#include <cmath>

namespace kiln {

namespace {

// The signed value of the first element of largest magnitude (ggml's reference quantizers scale
// by it, so the extreme lands exactly on the format's most negative code).
float SignedAbsMax(const float* x, int count) {
  float amax = 0.0f, max = 0.0f;
  for (int k = 0; k < count; ++k) {
    if (amax < std::fabs(x[k])) {
      amax = std::fabs(x[k]);
      max = x[k];
    }
  }
  return max;
}

// ---- Q8_0: d = amax / 127, q = round(x / d) (half away from zero), d stored as f16. ----

void QuantizeQ8_0(const float* x, BlockQ8_0* block) {
  float amax = 0.0f;
  for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;  // the reciprocal once, in f32, as ggml does
  block->d = F32ToF16(d);
  for (int k = 0; k < 32; ++k) block->qs[k] = static_cast<int8_t>(std::round(x[k] * id));
}

void DequantizeQ8_0(const BlockQ8_0& block, float* y) {
  const float d = F16ToF32(block.d);
  for (int k = 0; k < 32; ++k) y[k] = d * static_cast<float>(block.qs[k]);
}

// ---- Q4_0: d = (the signed value of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5)). ----

void QuantizeQ4_0(const float* x, BlockQ4_0* block) {
  const float max = SignedAbsMax(x, 32);
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block->d = F32ToF16(d);
  for (int j = 0; j < 16; ++j) {
    const int low = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
    const int high = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
    block->qs[j] = static_cast<uint8_t>(low | (high << 4));
  }
}

void DequantizeQ4_0(const BlockQ4_0& block, float* y) {
  const float d = F16ToF32(block.d);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((block.qs[j] & 0xF) - 8);
    y[j + 16] = d * static_cast<float>((block.qs[j] >> 4) - 8);
  }
}

// ---- Q5_0: d = (the signed value of largest magnitude) / -16, q = min(31, trunc(x / d + 16.5)). ----

void QuantizeQ5_0(const float* x, BlockQ5_0* block) {
  const float max = SignedAbsMax(x, 32);
  const float d = max / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block->d = F32ToF16(d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int low = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
    const int high = std::min(31, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 16.5f)));
    block->qs[j] = static_cast<uint8_t>((low & 0xF) | ((high & 0xF) << 4));
    qh |= static_cast<uint32_t>(low >> 4) << j;
    qh |= static_cast<uint32_t>(high >> 4) << (j + 16);
  }
  for (int i = 0; i < 4; ++i) block->qh[i] = static_cast<uint8_t>(qh >> (8 * i));
}

void DequantizeQ5_0(const BlockQ5_0& block, float* y) {
  const float d = F16ToF32(block.d);
  const uint32_t qh = Q5HighBits(block.qh);
  for (int j = 0; j < 16; ++j) {
    const int low = (block.qs[j] & 0xF) | (((qh >> j) & 1) << 4);
    const int high = (block.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * static_cast<float>(low - 16);
    y[j + 16] = d * static_cast<float>(high - 16);
  }
}

// ---- Q4_1 and Q5_1: min/max affine, d = (max - min) / (2^bits - 1), m = min,
// q = min(2^bits - 1, trunc((x - min) / d + 0.5)). ----

// The shared quantizer: writes d and m and returns every element's q in [0, max_q].
void QuantizeMinMax(const float* x, int max_q, uint16_t* d_bits, uint16_t* m_bits, uint8_t* q) {
  float min = x[0], max = x[0];
  for (int k = 1; k < 32; ++k) {
    min = std::min(min, x[k]);
    max = std::max(max, x[k]);
  }
  const float d = (max - min) / static_cast<float>(max_q);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  *d_bits = F32ToF16(d);
  *m_bits = F32ToF16(min);
  for (int k = 0; k < 32; ++k) q[k] = static_cast<uint8_t>(std::min(max_q, static_cast<int>(static_cast<int8_t>((x[k] - min) * id + 0.5f))));
}

void QuantizeQ4_1(const float* x, BlockQ4_1* block) {
  uint8_t q[32];
  QuantizeMinMax(x, 15, &block->d, &block->m, q);
  for (int j = 0; j < 16; ++j) block->qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
}

void DequantizeQ4_1(const BlockQ4_1& block, float* y) {
  const float d = F16ToF32(block.d), m = F16ToF32(block.m);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(block.qs[j] & 0xF) + m;
    y[j + 16] = d * static_cast<float>(block.qs[j] >> 4) + m;
  }
}

void QuantizeQ5_1(const float* x, BlockQ5_1* block) {
  uint8_t q[32];
  QuantizeMinMax(x, 31, &block->d, &block->m, q);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    block->qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
    qh |= static_cast<uint32_t>(q[j] >> 4) << j;
    qh |= static_cast<uint32_t>(q[j + 16] >> 4) << (j + 16);
  }
  for (int i = 0; i < 4; ++i) block->qh[i] = static_cast<uint8_t>(qh >> (8 * i));
}

void DequantizeQ5_1(const BlockQ5_1& block, float* y) {
  const float d = F16ToF32(block.d), m = F16ToF32(block.m);
  const uint32_t qh = Q5HighBits(block.qh);
  for (int j = 0; j < 16; ++j) {
    const int low = (block.qs[j] & 0xF) | (((qh >> j) & 1) << 4);
    const int high = (block.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * static_cast<float>(low) + m;
    y[j + 16] = d * static_cast<float>(high) + m;
  }
}

// ---- Q4_K: 8 sub-blocks of 32, y = d * sc * q - dmin * m with 6-bit sc and m, 4-bit q. ----

// The scale and (non-negative) offset of an affine fit of x[0, 32) with q in [0, max_q]:
// x ~ scale * q - offset. Starts from the min/max fit and refits scale and offset by least
// squares on the chosen q, keeping the better of the two.
void FitAffine(const float* x, int max_q, float* scale, float* offset) {
  float lo = std::min(0.0f, *std::min_element(x, x + 32));
  float hi = *std::max_element(x, x + 32);
  if (hi <= lo) {
    *scale = 0.0f;
    *offset = -lo;
    return;
  }
  auto error_of = [&](float s, float o) {
    double error = 0.0;
    for (int k = 0; k < 32; ++k) {
      const int q = s > 0.0f ? std::clamp(static_cast<int>(std::nearbyint((x[k] + o) / s)), 0, max_q) : 0;
      const double diff = s * q - o - x[k];
      error += diff * diff;
    }
    return error;
  };
  float best_scale = (hi - lo) / static_cast<float>(max_q), best_offset = -lo;
  double best_error = error_of(best_scale, best_offset);
  for (int iteration = 0; iteration < 2; ++iteration) {
    // Least squares for (s, o) given q: x = s q - o.
    double sum_q = 0, sum_qq = 0, sum_x = 0, sum_qx = 0;
    for (int k = 0; k < 32; ++k) {
      const int q = std::clamp(static_cast<int>(std::nearbyint((x[k] + best_offset) / best_scale)), 0, max_q);
      sum_q += q;
      sum_qq += static_cast<double>(q) * q;
      sum_x += x[k];
      sum_qx += q * static_cast<double>(x[k]);
    }
    const double det = 32 * sum_qq - sum_q * sum_q;
    if (det <= 0) break;
    const float s = static_cast<float>((32 * sum_qx - sum_q * sum_x) / det);
    const float o = static_cast<float>(-(sum_x * sum_qq - sum_q * sum_qx) / det);
    if (!(s > 0.0f) || o < 0.0f) break;
    const double error = error_of(s, o);
    if (error >= best_error) break;
    best_scale = s;
    best_offset = o;
    best_error = error;
  }
  *scale = best_scale;
  *offset = best_offset;
}

// The shared part of Q4_K and Q5_K: fits each sub-block, stores d, dmin and the packed 6-bit
// scales and minimums, and returns every element's q in [0, max_q].
void QuantizeKAffine(const float* x, int max_q, uint16_t* d_bits, uint16_t* dmin_bits, uint8_t* packed_scales, uint8_t* q) {
  float scales[8], offsets[8];
  float max_scale = 0.0f, max_offset = 0.0f;
  for (int j = 0; j < 8; ++j) {
    FitAffine(x + 32 * j, max_q, &scales[j], &offsets[j]);
    max_scale = std::max(max_scale, scales[j]);
    max_offset = std::max(max_offset, offsets[j]);
  }
  const float d = max_scale / 63.0f, dmin = max_offset / 63.0f;
  *d_bits = F32ToF16(d);
  *dmin_bits = F32ToF16(dmin);
  // Quantize the sub-block scales against the stored (f16-rounded) d and dmin.
  const float stored_d = F16ToF32(*d_bits), stored_dmin = F16ToF32(*dmin_bits);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = stored_d > 0.0f ? static_cast<uint8_t>(std::clamp(static_cast<int>(std::nearbyint(scales[j] / stored_d)), 0, 63)) : 0;
    m[j] = stored_dmin > 0.0f ? static_cast<uint8_t>(std::clamp(static_cast<int>(std::nearbyint(offsets[j] / stored_dmin)), 0, 63)) : 0;
  }
  std::fill(packed_scales, packed_scales + 12, 0);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      packed_scales[j] |= sc[j];
      packed_scales[j + 4] |= m[j];
    } else {
      packed_scales[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
      packed_scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      packed_scales[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
    }
  }
  for (int j = 0; j < 8; ++j) {
    const float s = stored_d * sc[j], o = stored_dmin * m[j];
    for (int k = 0; k < 32; ++k) {
      q[32 * j + k] = s > 0.0f ? static_cast<uint8_t>(std::clamp(static_cast<int>(std::nearbyint((x[32 * j + k] + o) / s)), 0, max_q)) : 0;
    }
  }
}

void QuantizeQ4_K(const float* x, BlockQ4_K* block) {
  uint8_t q[256];
  QuantizeKAffine(x, 15, &block->d, &block->dmin, block->scales, q);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) block->qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}

// Chunk c (64 elements) of a Q4_K / Q5_K block: the scales and minimums of its two 32-element
// sub-blocks, d * sc and dmin * m.
struct KChunkScales {
  float d0, o0, d1, o1;
};
KChunkScales KChunk(uint16_t d_bits, uint16_t dmin_bits, const uint8_t* scales, int c) {
  const float d = F16ToF32(d_bits), dmin = F16ToF32(dmin_bits);
  uint8_t sc0, m0, sc1, m1;
  Q4KScaleMin(scales, 2 * c, &sc0, &m0);
  Q4KScaleMin(scales, 2 * c + 1, &sc1, &m1);
  return {d * sc0, dmin * m0, d * sc1, dmin * m1};
}

void DequantizeQ4_K(const BlockQ4_K& block, float* y) {
  for (int c = 0; c < 4; ++c) {
    const auto [d0, o0, d1, o1] = KChunk(block.d, block.dmin, block.scales, c);
    for (int l = 0; l < 32; ++l) {
      y[64 * c + l] = d0 * static_cast<float>(block.qs[32 * c + l] & 0xF) - o0;
      y[64 * c + 32 + l] = d1 * static_cast<float>(block.qs[32 * c + l] >> 4) - o1;
    }
  }
}

// ---- Q5_K: Q4_K's sub-blocks with 5-bit q, the 5th bits in qh. ----

void QuantizeQ5_K(const float* x, BlockQ5_K* block) {
  uint8_t q[256];
  QuantizeKAffine(x, 31, &block->d, &block->dmin, block->scales, q);
  std::fill(block->qh, block->qh + 32, 0);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t low = q[64 * c + l], high = q[64 * c + 32 + l];
      block->qs[32 * c + l] = static_cast<uint8_t>((low & 0xF) | ((high & 0xF) << 4));
      block->qh[l] |= static_cast<uint8_t>(((low >> 4) << (2 * c)) | ((high >> 4) << (2 * c + 1)));
    }
  }
}

void DequantizeQ5_K(const BlockQ5_K& block, float* y) {
  for (int c = 0; c < 4; ++c) {
    const auto [d0, o0, d1, o1] = KChunk(block.d, block.dmin, block.scales, c);
    for (int l = 0; l < 32; ++l) {
      const int low = (block.qs[32 * c + l] & 0xF) | (((block.qh[l] >> (2 * c)) & 1) << 4);
      const int high = (block.qs[32 * c + l] >> 4) | (((block.qh[l] >> (2 * c + 1)) & 1) << 4);
      y[64 * c + l] = d0 * static_cast<float>(low) - o0;
      y[64 * c + 32 + l] = d1 * static_cast<float>(high) - o1;
    }
  }
}

// ---- Q6_K: 16 sub-blocks of 16, y = d * sc * (q - 32) with i8 sc and 6-bit q. ----

// Within a 128-element half, element e's 6-bit value is split between ql and qh as follows.
struct Q6Place {
  int ql;     // byte of ql (within the half's 64)
  int ql_shift;
  int qh;     // byte of qh (within the half's 32)
  int qh_shift;
};
Q6Place Q6PlaceOf(int e) {
  const int l = e % 32, quarter = e / 32;  // quarter 0..3: l, l+32, l+64, l+96
  return {l + (quarter & 1) * 32, (quarter >> 1) * 4, l, quarter * 2};
}

void QuantizeQ6_K(const float* x, BlockQ6_K* block) {
  float scales[16], max_abs_scale = 0.0f;
  for (int i = 0; i < 16; ++i) {
    scales[i] = SignedAbsMax(x + 16 * i, 16) / -32.0f;  // the largest value lands on -32, the one end the 6-bit range has room for
    max_abs_scale = std::max(max_abs_scale, std::fabs(scales[i]));
  }
  const float d = max_abs_scale / 127.0f;
  block->d = F32ToF16(d);
  const float stored_d = F16ToF32(block->d);
  uint8_t q[256];
  for (int i = 0; i < 16; ++i) {
    const int sc = stored_d > 0.0f ? std::clamp(static_cast<int>(std::nearbyint(scales[i] / stored_d)), -128, 127) : 0;
    block->scales[i] = static_cast<int8_t>(sc);
    const float s = stored_d * sc;
    for (int k = 0; k < 16; ++k) {
      const int value = s != 0.0f ? std::clamp(static_cast<int>(std::nearbyint(x[16 * i + k] / s)), -32, 31) : 0;
      q[16 * i + k] = static_cast<uint8_t>(value + 32);
    }
  }
  std::fill(block->ql, block->ql + 128, 0);
  std::fill(block->qh, block->qh + 64, 0);
  for (int half = 0; half < 2; ++half) {
    for (int e = 0; e < 128; ++e) {
      const uint8_t value = q[128 * half + e];
      const Q6Place place = Q6PlaceOf(e);
      block->ql[64 * half + place.ql] |= static_cast<uint8_t>((value & 0xF) << place.ql_shift);
      block->qh[32 * half + place.qh] |= static_cast<uint8_t>((value >> 4) << place.qh_shift);
    }
  }
}

void DequantizeQ6_K(const BlockQ6_K& block, float* y) {
  const float d = F16ToF32(block.d);
  for (int half = 0; half < 2; ++half) {
    for (int e = 0; e < 128; ++e) {
      const Q6Place place = Q6PlaceOf(e);
      const int low = (block.ql[64 * half + place.ql] >> place.ql_shift) & 0xF;
      const int high = (block.qh[32 * half + place.qh] >> place.qh_shift) & 3;
      const int sc = block.scales[8 * half + e / 16];
      y[128 * half + e] = d * static_cast<float>(sc) * static_cast<float>((low | (high << 4)) - 32);
    }
  }
}

// ---- F8_E4M3: scale = amax / 448, q = e4m3(x / scale). ----

void QuantizeF8(const float* x, BlockF8E4M3* block) {
  float amax = 0.0f;
  for (int k = 0; k < 128; ++k) amax = std::max(amax, std::fabs(x[k]));
  block->scale = amax / 448.0f;
  const float inverse = block->scale != 0.0f ? 1.0f / block->scale : 0.0f;
  for (int k = 0; k < 128; ++k) block->q[k] = F32ToF8E4M3(x[k] * inverse);
}

void DequantizeF8(const BlockF8E4M3& block, float* y) {
  for (int k = 0; k < 128; ++k) y[k] = block.scale * F8E4M3ToF32(block.q[k]);
}

template <typename Block, void (*Fn)(const Block&, float*)>
void DequantizeBlocks(const void* src, int64_t elements, int per_block, float* out) {
  const Block* blocks = static_cast<const Block*>(src);
  for (int64_t b = 0; b < elements / per_block; ++b) Fn(blocks[b], out + b * per_block);
}

template <typename Block, void (*Fn)(const float*, Block*)>
void QuantizeBlocks(const float* src, int64_t elements, int per_block, void* out) {
  Block* blocks = static_cast<Block*>(out);
  for (int64_t b = 0; b < elements / per_block; ++b) Fn(src + b * per_block, &blocks[b]);
}

}  // namespace

float F8E4M3ToF32(uint8_t bits) {
  const int sign = bits >> 7, exponent = (bits >> 3) & 0xF, mantissa = bits & 7;
  float magnitude;
  if (exponent == 0xF && mantissa == 7) {
    magnitude = NAN;
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -9);  // subnormal: m/8 * 2^-6
  } else {
    magnitude = std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);  // (1 + m/8) * 2^(e-7)
  }
  return sign ? -magnitude : magnitude;
}

uint8_t F32ToF8E4M3(float value) {
  if (std::isnan(value)) return 0x7F;
  const uint8_t sign = std::signbit(value) ? 0x80 : 0;
  const float magnitude = std::fabs(value);
  if (magnitude >= 448.0f) return sign | 0x7E;  // saturate: the format has no infinity
  if (magnitude < std::ldexp(1.0f, -6)) {       // subnormal range: quantum 2^-9
    return sign | static_cast<uint8_t>(std::nearbyint(std::ldexp(magnitude, 9)));  // 8 rounds up to the smallest normal
  }
  int exponent;
  const float fraction = std::frexp(magnitude, &exponent);  // magnitude = fraction * 2^exponent, fraction in [0.5, 1)
  uint32_t significand = static_cast<uint32_t>(std::nearbyint(fraction * 16.0f));  // 4 significant bits, RNE
  if (significand == 16) {
    significand = 8;
    ++exponent;
  }
  const int biased = exponent - 1 + 7;
  if (biased > 15 || (biased == 15 && (significand & 7) == 7)) return sign | 0x7E;
  return sign | static_cast<uint8_t>((biased << 3) | (significand & 7));
}

void DequantizeRow(DType dtype, const void* src, int64_t elements, float* out) {
  switch (dtype) {
    case DType::kF32: std::copy_n(static_cast<const float*>(src), elements, out); return;
    case DType::kBF16:
      for (int64_t i = 0; i < elements; ++i) out[i] = Bf16ToF32(static_cast<const uint16_t*>(src)[i]);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < elements; ++i) out[i] = F16ToF32(static_cast<const uint16_t*>(src)[i]);
      return;
    case DType::kI32: return;
    case DType::kQ8_0: return DequantizeBlocks<BlockQ8_0, DequantizeQ8_0>(src, elements, 32, out);
    case DType::kQ4_0: return DequantizeBlocks<BlockQ4_0, DequantizeQ4_0>(src, elements, 32, out);
    case DType::kQ4_K: return DequantizeBlocks<BlockQ4_K, DequantizeQ4_K>(src, elements, 256, out);
    case DType::kQ6_K: return DequantizeBlocks<BlockQ6_K, DequantizeQ6_K>(src, elements, 256, out);
    case DType::kF8_E4M3: return DequantizeBlocks<BlockF8E4M3, DequantizeF8>(src, elements, 128, out);
    case DType::kQ5_0: return DequantizeBlocks<BlockQ5_0, DequantizeQ5_0>(src, elements, 32, out);
    case DType::kQ5_1: return DequantizeBlocks<BlockQ5_1, DequantizeQ5_1>(src, elements, 32, out);
    case DType::kQ4_1: return DequantizeBlocks<BlockQ4_1, DequantizeQ4_1>(src, elements, 32, out);
    case DType::kQ5_K: return DequantizeBlocks<BlockQ5_K, DequantizeQ5_K>(src, elements, 256, out);
  }
}

void QuantizeRow(DType dtype, const float* src, int64_t elements, void* out) {
  switch (dtype) {
    case DType::kF32: std::copy_n(src, elements, static_cast<float*>(out)); return;
    case DType::kBF16:
      for (int64_t i = 0; i < elements; ++i) static_cast<uint16_t*>(out)[i] = F32ToBf16(src[i]);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < elements; ++i) static_cast<uint16_t*>(out)[i] = F32ToF16(src[i]);
      return;
    case DType::kI32: return;
    case DType::kQ8_0: return QuantizeBlocks<BlockQ8_0, QuantizeQ8_0>(src, elements, 32, out);
    case DType::kQ4_0: return QuantizeBlocks<BlockQ4_0, QuantizeQ4_0>(src, elements, 32, out);
    case DType::kQ4_K: return QuantizeBlocks<BlockQ4_K, QuantizeQ4_K>(src, elements, 256, out);
    case DType::kQ6_K: return QuantizeBlocks<BlockQ6_K, QuantizeQ6_K>(src, elements, 256, out);
    case DType::kF8_E4M3: return QuantizeBlocks<BlockF8E4M3, QuantizeF8>(src, elements, 128, out);
    case DType::kQ5_0: return QuantizeBlocks<BlockQ5_0, QuantizeQ5_0>(src, elements, 32, out);
    case DType::kQ5_1: return QuantizeBlocks<BlockQ5_1, QuantizeQ5_1>(src, elements, 32, out);
    case DType::kQ4_1: return QuantizeBlocks<BlockQ4_1, QuantizeQ4_1>(src, elements, 32, out);
    case DType::kQ5_K: return QuantizeBlocks<BlockQ5_K, QuantizeQ5_K>(src, elements, 256, out);
  }
}

}  // namespace kiln
