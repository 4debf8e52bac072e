// Element types and their conversions.
//
// Weights arrive as bf16, f16 or f32, or in a block format (quant.h): a block of elements along
// a row shares its scales, so a block type has a size per block, not per element. CPU activations
// are f32. Conversions here are exact where the format allows it (bf16/f16 -> f32) and
// round-to-nearest-even the other way, matching torch.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "core/status.h"

namespace kiln {

// The numbering is stored in .kiln files: append, never renumber.
enum class DType : uint8_t {
  kF32 = 0,
  kBF16 = 1,
  kF16 = 2,
  kI32 = 3,
  // Block formats, bit-exact with GGUF's (quantization.md section 3).
  kQ8_0 = 4,    // 32 elements, 34 bytes: f16 d, i8 qs[32]
  kQ4_0 = 5,    // 32 elements, 18 bytes: f16 d, u8 qs[16] (low nibbles 0-15, high 16-31)
  kQ4_K = 6,    // 256 elements, 144 bytes: f16 d, f16 dmin, u8 scales[12], u8 qs[128]
  kQ6_K = 7,    // 256 elements, 210 bytes: u8 ql[128], u8 qh[64], i8 scales[16], f16 d
  kF8_E4M3 = 8, // 128 elements, 132 bytes: f32 scale, e4m3 q[128] (kiln's own 1x128 block scaling)
  kQ5_0 = 9,    // 32 elements, 22 bytes: f16 d, u8 qh[4] (5th bits), u8 qs[16] (nibbles as q4_0)
  kQ5_1 = 10,   // 32 elements, 24 bytes: f16 d, f16 m, u8 qh[4], u8 qs[16]
  kQ4_1 = 11,   // 32 elements, 20 bytes: f16 d, f16 m, u8 qs[16]
  kQ5_K = 12,   // 256 elements, 176 bytes: f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
};
inline constexpr int kNumDTypes = 13;

// Elements per block: 1 for element types.
int64_t DTypeBlockElements(DType dtype);
// Bytes per block (per element for element types).
int64_t DTypeBlockBytes(DType dtype);
inline bool IsBlockDType(DType dtype) { return DTypeBlockElements(dtype) > 1; }
// Bytes per element of an element type; 0 for a block type (use DTypeBytes).
size_t DTypeSize(DType dtype);
// Bytes of `elements` values; -1 when a block type's rows are not whole blocks (callers check
// with DTypeRowsFit first).
int64_t DTypeBytes(DType dtype, int64_t elements);
// Whether a tensor whose rows have `row_elements` can be stored in `dtype` (whole blocks per row).
inline bool DTypeRowsFit(DType dtype, int64_t row_elements) { return row_elements % DTypeBlockElements(dtype) == 0; }
// "f32", "bf16", "f16", "i32", "q8_0", "q4_0", "q4_k", "q6_k", "f8_e4m3", "q5_0", "q5_1", "q4_1",
// "q5_k".
const char* DTypeName(DType dtype);
// The inverse of DTypeName; nullopt for anything else.
std::optional<DType> DTypeFromName(std::string_view name);
// Whether a stored byte is a known DType (artifact readers check before casting).
inline bool IsKnownDType(uint8_t value) { return value < kNumDTypes; }
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
