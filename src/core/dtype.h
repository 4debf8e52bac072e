// Element types and their conversions.
//
// Weights arrive as bf16, f16 or f32; CPU activations are f32. Conversions here are exact where
// the format allows it (bf16/f16 -> f32) and round-to-nearest-even the other way, matching torch.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/status.h"

namespace kiln {

enum class DType : uint8_t { kF32 = 0, kBF16 = 1, kF16 = 2, kI32 = 3 };

// Bytes per element.
size_t DTypeSize(DType dtype);
// "f32", "bf16", "f16", "i32".
const char* DTypeName(DType dtype);
// Parses a safetensors dtype string ("F32", "BF16", "F16", "I32"); anything else is kUnsupported.
Result<DType> DTypeFromSafetensors(std::string_view name);

inline float Bf16ToF32(uint16_t bits) {
  uint32_t word = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &word, sizeof(value));
  return value;
}

// Round to nearest even; NaN stays NaN (quiet).
inline uint16_t F32ToBf16(float value) {
  uint32_t word;
  std::memcpy(&word, &value, sizeof(word));
  if ((word & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((word >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((word >> 16) & 1u);
  return static_cast<uint16_t>((word + rounding) >> 16);
}

float F16ToF32(uint16_t bits);
uint16_t F32ToF16(float value);

}  // namespace kiln
