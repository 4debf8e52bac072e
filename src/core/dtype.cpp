#include "core/dtype.h"

#include <cmath>

namespace kiln {

int64_t DTypeBlockElements(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kBF16:
    case DType::kF16:
    case DType::kI32: return 1;
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ4_1: return 32;
    case DType::kQ4_K:
    case DType::kQ6_K:
    case DType::kQ5_K: return 256;
    case DType::kF8_E4M3: return 128;
  }
  return 1;
}

int64_t DTypeBlockBytes(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kI32: return 4;
    case DType::kQ8_0: return 34;
    case DType::kQ4_0: return 18;
    case DType::kQ4_K: return 144;
    case DType::kQ6_K: return 210;
    case DType::kF8_E4M3: return 132;
    case DType::kQ5_0: return 22;
    case DType::kQ5_1: return 24;
    case DType::kQ4_1: return 20;
    case DType::kQ5_K: return 176;
  }
  return 0;
}

size_t DTypeSize(DType dtype) { return IsBlockDType(dtype) ? 0 : static_cast<size_t>(DTypeBlockBytes(dtype)); }

int64_t DTypeBytes(DType dtype, int64_t elements) {
  const int64_t block = DTypeBlockElements(dtype);
  if (elements % block != 0) return -1;
  return elements / block * DTypeBlockBytes(dtype);
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kI32: return "i32";
    case DType::kQ8_0: return "q8_0";
    case DType::kQ4_0: return "q4_0";
    case DType::kQ4_K: return "q4_k";
    case DType::kQ6_K: return "q6_k";
    case DType::kF8_E4M3: return "f8_e4m3";
    case DType::kQ5_0: return "q5_0";
    case DType::kQ5_1: return "q5_1";
    case DType::kQ4_1: return "q4_1";
    case DType::kQ5_K: return "q5_k";
  }
  return "?";
}

std::optional<DType> DTypeFromName(std::string_view name) {
  for (int i = 0; i < kNumDTypes; ++i) {
    if (name == DTypeName(static_cast<DType>(i))) return static_cast<DType>(i);
  }
  return std::nullopt;
}

Result<DType> DTypeFromSafetensors(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "BF16") return DType::kBF16;
  if (name == "F16") return DType::kF16;
  if (name == "I32") return DType::kI32;
  return Error(ErrorCode::kUnsupported,
               "tensor dtype " + std::string(name) + " is not supported (expected BF16, F16 or F32)");
}

float F16ToF32(uint16_t bits) {
  const uint32_t sign = (bits >> 15) & 1u;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
  } else if (exponent == 31) {
    magnitude = mantissa ? NAN : INFINITY;
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  return sign ? -magnitude : magnitude;
}

uint16_t F32ToF16(float value) {
  uint32_t word;
  std::memcpy(&word, &value, sizeof(word));
  const uint16_t sign = static_cast<uint16_t>((word >> 16) & 0x8000u);
  const float magnitude = std::fabs(value);
  if (std::isnan(value)) return sign | 0x7e00u;
  if (magnitude >= 65520.0f) return sign | 0x7c00u;  // rounds to infinity
  if (magnitude < 6.103515625e-05f) {                 // subnormal range: quantum 2^-24
    return sign | static_cast<uint16_t>(std::nearbyint(magnitude * 16777216.0f));
  }
  int exponent;
  const float fraction = std::frexp(magnitude, &exponent);  // magnitude = fraction * 2^exponent
  // 11 significant bits: round fraction*2^11 to nearest even (nearbyint uses the FE mode, RNE).
  uint32_t significand = static_cast<uint32_t>(std::nearbyint(fraction * 2048.0f));
  if (significand == 2048) {
    significand = 1024;
    ++exponent;
  }
  const uint32_t biased = static_cast<uint32_t>(exponent - 1 + 15);
  return sign | static_cast<uint16_t>((biased << 10) | (significand & 0x3ffu));
}

}  // namespace kiln
