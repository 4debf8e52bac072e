#include "core/quant.h"

#include <algorithm>
#include <cmath>

namespace kiln {

namespace {

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
  float amax = 0.0f, max = 0.0f;
  for (int k = 0; k < 32; ++k) {
    if (amax < std::fabs(x[k])) {
      amax = std::fabs(x[k]);
      max = x[k];
    }
  }
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

// ---- Q4_K: 8 sub-blocks of 32, y = d * sc * q - dmin * m with 6-bit sc and m, 4-bit q. ----

// The scale and (non-negative) offset of an affine 4-bit fit of x[0, 32): x ~ scale * q - offset.
// Starts from the min/max fit and refits scale and offset by least squares on the chosen q,
// keeping the better of the two.
void FitAffine4(const float* x, float* scale, float* offset) {
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
      const int q = s > 0.0f ? std::clamp(static_cast<int>(std::nearbyint((x[k] + o) / s)), 0, 15) : 0;
      const double diff = s * q - o - x[k];
      error += diff * diff;
    }
    return error;
  };
  float best_scale = (hi - lo) / 15.0f, best_offset = -lo;
  double best_error = error_of(best_scale, best_offset);
  for (int iteration = 0; iteration < 2; ++iteration) {
    // Least squares for (s, o) given q: x = s q - o.
    double sum_q = 0, sum_qq = 0, sum_x = 0, sum_qx = 0;
    for (int k = 0; k < 32; ++k) {
      const int q = std::clamp(static_cast<int>(std::nearbyint((x[k] + best_offset) / best_scale)), 0, 15);
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

void QuantizeQ4_K(const float* x, BlockQ4_K* block) {
  float scales[8], offsets[8];
  float max_scale = 0.0f, max_offset = 0.0f;
  for (int j = 0; j < 8; ++j) {
    FitAffine4(x + 32 * j, &scales[j], &offsets[j]);
    max_scale = std::max(max_scale, scales[j]);
    max_offset = std::max(max_offset, offsets[j]);
  }
  const float d = max_scale / 63.0f, dmin = max_offset / 63.0f;
  block->d = F32ToF16(d);
  block->dmin = F32ToF16(dmin);
  // Quantize the sub-block scales against the stored (f16-rounded) d and dmin.
  const float stored_d = F16ToF32(block->d), stored_dmin = F16ToF32(block->dmin);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = stored_d > 0.0f ? static_cast<uint8_t>(std::clamp(static_cast<int>(std::nearbyint(scales[j] / stored_d)), 0, 63)) : 0;
    m[j] = stored_dmin > 0.0f ? static_cast<uint8_t>(std::clamp(static_cast<int>(std::nearbyint(offsets[j] / stored_dmin)), 0, 63)) : 0;
  }
  std::fill(block->scales, block->scales + 12, 0);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      block->scales[j] |= sc[j];
      block->scales[j + 4] |= m[j];
    } else {
      block->scales[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
      block->scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      block->scales[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
    }
  }
  uint8_t q[256];
  for (int j = 0; j < 8; ++j) {
    const float s = stored_d * sc[j], o = stored_dmin * m[j];
    for (int k = 0; k < 32; ++k) {
      q[32 * j + k] = s > 0.0f ? static_cast<uint8_t>(std::clamp(static_cast<int>(std::nearbyint((x[32 * j + k] + o) / s)), 0, 15)) : 0;
    }
  }
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) block->qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}

void DequantizeQ4_K(const BlockQ4_K& block, float* y) {
  const float d = F16ToF32(block.d), dmin = F16ToF32(block.dmin);
  for (int c = 0; c < 4; ++c) {
    uint8_t sc0, m0, sc1, m1;
    Q4KScaleMin(block.scales, 2 * c, &sc0, &m0);
    Q4KScaleMin(block.scales, 2 * c + 1, &sc1, &m1);
    const float d0 = d * sc0, o0 = dmin * m0, d1 = d * sc1, o1 = dmin * m1;
    for (int l = 0; l < 32; ++l) {
      y[64 * c + l] = d0 * static_cast<float>(block.qs[32 * c + l] & 0xF) - o0;
      y[64 * c + 32 + l] = d1 * static_cast<float>(block.qs[32 * c + l] >> 4) - o1;
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
    float amax = 0.0f, max = 0.0f;
    for (int k = 0; k < 16; ++k) {
      if (std::fabs(x[16 * i + k]) > amax) {
        amax = std::fabs(x[16 * i + k]);
        max = x[16 * i + k];
      }
    }
    scales[i] = max / -32.0f;  // the largest value lands on -32, the one end the 6-bit range has room for
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
  }
}

}  // namespace kiln
