// Random weight rows in every block format, shared by the CPU block-format kernel tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/quant.h"

namespace kiln::cpu {

// `rows` weight rows of k elements in `dtype`, `row_bytes` apart, made of random bytes: every bit
// pattern of the packed values and sub-block scales occurs, not only those a quantizer writes.
// Scales are kept finite: d, dmin, m in [-0.02, 0.02] (f16), f8 scales in [-0.01, 0.01], and one f8
// block per row with a scale of 300 (kernels take another path above 2^7). F8 NaN codes are
// avoided: the reference dequantizes them to NaN.
inline std::vector<uint8_t> RandomBlockRows(DType dtype, int64_t rows, int64_t k, int64_t row_bytes, std::mt19937& rng) {
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * row_bytes));
  std::uniform_real_distribution<float> scale(-0.02f, 0.02f);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  const int64_t block_bytes = DTypeBlockBytes(dtype), blocks = k / DTypeBlockElements(dtype);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < blocks; ++b) {
      uint8_t* block = bytes.data() + r * row_bytes + b * block_bytes;
      auto put_f16 = [&](size_t offset) {
        const uint16_t h = F32ToF16(scale(rng));
        std::memcpy(block + offset, &h, 2);
      };
      switch (dtype) {
        case DType::kQ8_0: put_f16(offsetof(BlockQ8_0, d)); break;
        case DType::kQ4_0: put_f16(offsetof(BlockQ4_0, d)); break;
        case DType::kQ4_K: put_f16(offsetof(BlockQ4_K, d)); put_f16(offsetof(BlockQ4_K, dmin)); break;
        case DType::kQ6_K: put_f16(offsetof(BlockQ6_K, d)); break;
        case DType::kQ5_0: put_f16(offsetof(BlockQ5_0, d)); break;
        case DType::kQ5_1: put_f16(offsetof(BlockQ5_1, d)); put_f16(offsetof(BlockQ5_1, m)); break;
        case DType::kQ4_1: put_f16(offsetof(BlockQ4_1, d)); put_f16(offsetof(BlockQ4_1, m)); break;
        case DType::kQ5_K: put_f16(offsetof(BlockQ5_K, d)); put_f16(offsetof(BlockQ5_K, dmin)); break;
        case DType::kF8_E4M3: {
          const float s = b == 1 ? 300.0f : scale(rng) / 2;
          std::memcpy(block + offsetof(BlockF8E4M3, scale), &s, 4);
          uint8_t* q = block + offsetof(BlockF8E4M3, q);
          for (int i = 0; i < 128; ++i) if ((q[i] & 0x7F) == 0x7F) q[i] = 0;
          break;
        }
        default: break;
      }
    }
  }
  return bytes;
}

}  // namespace kiln::cpu
