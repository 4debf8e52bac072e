#include "core/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace kiln {
namespace {

std::vector<float> RandomRow(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(n));
  for (float& v : row) v = normal(rng);
  return row;
}

// Relative RMS error of a quantize-dequantize round trip.
double RoundTripError(DType dtype, const std::vector<float>& row) {
  std::vector<uint8_t> packed(static_cast<size_t>(DTypeBytes(dtype, static_cast<int64_t>(row.size()))));
  QuantizeRow(dtype, row.data(), static_cast<int64_t>(row.size()), packed.data());
  std::vector<float> back(row.size());
  DequantizeRow(dtype, packed.data(), static_cast<int64_t>(row.size()), back.data());
  double error = 0, norm = 0;
  for (size_t i = 0; i < row.size(); ++i) {
    error += (back[i] - row[i]) * (back[i] - row[i]);
    norm += row[i] * row[i];
  }
  return std::sqrt(error / norm);
}

TEST(QuantTest, BlockSizesAndNames) {
  EXPECT_EQ(DTypeBytes(DType::kQ8_0, 64), 68);
  EXPECT_EQ(DTypeBytes(DType::kQ4_0, 32), 18);
  EXPECT_EQ(DTypeBytes(DType::kQ4_K, 512), 288);
  EXPECT_EQ(DTypeBytes(DType::kQ6_K, 256), 210);
  EXPECT_EQ(DTypeBytes(DType::kF8_E4M3, 256), 264);
  EXPECT_EQ(DTypeBytes(DType::kQ4_K, 100), -1);
  EXPECT_EQ(DTypeBytes(DType::kBF16, 3), 6);
  EXPECT_FALSE(DTypeRowsFit(DType::kQ6_K, 2112));
  EXPECT_TRUE(DTypeRowsFit(DType::kQ8_0, 2112));
  EXPECT_EQ(DTypeSize(DType::kQ8_0), 0u);
  for (int i = 0; i < kNumDTypes; ++i) EXPECT_EQ(DTypeFromName(DTypeName(static_cast<DType>(i))), static_cast<DType>(i));
  EXPECT_FALSE(DTypeFromName("q5_k").has_value());
}

TEST(QuantTest, RoundTripErrorsAreThoseOfEachFormat) {
  const std::vector<float> row = RandomRow(4096, 7);
  // Gaussian rows: the relative RMS error each bit width gives (measured, with headroom).
  EXPECT_LT(RoundTripError(DType::kQ8_0, row), 0.01);
  EXPECT_LT(RoundTripError(DType::kQ6_K, row), 0.04);
  EXPECT_LT(RoundTripError(DType::kQ4_0, row), 0.12);
  EXPECT_LT(RoundTripError(DType::kQ4_K, row), 0.11);
  EXPECT_LT(RoundTripError(DType::kF8_E4M3, row), 0.05);
  EXPECT_EQ(RoundTripError(DType::kF32, row), 0.0);
}

TEST(QuantTest, Q8_0MatchesTheReferenceArithmetic) {
  // d = amax / 127 in f32, q = round(x / d) half away from zero, d stored as f16.
  std::vector<float> row(32, 0.0f);
  row[0] = 127.0f;
  row[1] = -63.5f;  // exactly half: rounds away from zero
  row[2] = 0.49f;
  BlockQ8_0 block;
  QuantizeRow(DType::kQ8_0, row.data(), 32, &block);
  EXPECT_EQ(F16ToF32(block.d), 1.0f);
  EXPECT_EQ(block.qs[0], 127);
  EXPECT_EQ(block.qs[1], -64);
  EXPECT_EQ(block.qs[2], 0);
  std::vector<float> zero(32, 0.0f);
  QuantizeRow(DType::kQ8_0, zero.data(), 32, &block);
  EXPECT_EQ(block.d, 0);
  for (int8_t q : block.qs) EXPECT_EQ(q, 0);
}

TEST(QuantTest, Q4_0MatchesTheReferenceArithmetic) {
  // d = (signed value of largest magnitude) / -8; that value maps to q = 0, its negation to 15 (clamped from 16).
  std::vector<float> row(32, 0.0f);
  row[3] = -8.0f;
  row[20] = 8.0f;
  row[5] = 1.0f;
  BlockQ4_0 block;
  QuantizeRow(DType::kQ4_0, row.data(), 32, &block);
  EXPECT_EQ(F16ToF32(block.d), 1.0f);
  EXPECT_EQ(block.qs[3] & 0xF, 0);      // -8 -> 0
  EXPECT_EQ(block.qs[4] >> 4, 15);      // element 20 = high nibble of byte 4: 8 -> 16 -> 15
  EXPECT_EQ(block.qs[5] & 0xF, 9);      // 1 / 1 + 8.5 = 9.5 -> 9
  std::vector<float> back(32);
  DequantizeRow(DType::kQ4_0, &block, 32, back.data());
  EXPECT_EQ(back[3], -8.0f);
  EXPECT_EQ(back[20], 7.0f);
  EXPECT_EQ(back[5], 1.0f);
}

TEST(QuantTest, Q4KScalesPackAndUnpack) {
  // Every 6-bit (scale, min) pair survives the 12-byte packing.
  std::mt19937 rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> row = RandomRow(256, static_cast<uint32_t>(trial));
    for (int j = 0; j < 8; ++j) {
      for (int k = 0; k < 32; ++k) row[32 * j + k] = row[32 * j + k] * static_cast<float>(j + 1) + static_cast<float>(j);
    }
    BlockQ4_K block;
    QuantizeRow(DType::kQ4_K, row.data(), 256, &block);
    std::vector<float> back(256);
    DequantizeRow(DType::kQ4_K, &block, 256, back.data());
    for (int j = 0; j < 8; ++j) {
      double error = 0, spread = 0;
      for (int k = 0; k < 32; ++k) {
        error = std::max(error, static_cast<double>(std::fabs(back[32 * j + k] - row[32 * j + k])));
        spread = std::max(spread, static_cast<double>(std::fabs(row[32 * j + k])));
      }
      EXPECT_LT(error, spread * 0.2) << "trial " << trial << " sub-block " << j;
    }
  }
}

TEST(QuantTest, F8E4M3ConvertsEveryValue) {
  // Every finite code decodes and encodes back to itself; the largest is 448, the smallest 2^-9.
  for (int bits = 0; bits < 256; ++bits) {
    const float value = F8E4M3ToF32(static_cast<uint8_t>(bits));
    if ((bits & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(value));
      continue;
    }
    if (bits == 0x80) continue;  // -0 encodes as -0: the same code
    EXPECT_EQ(F32ToF8E4M3(value), bits) << bits << " " << value;
  }
  EXPECT_EQ(F8E4M3ToF32(0x7E), 448.0f);
  EXPECT_EQ(F8E4M3ToF32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(F32ToF8E4M3(1e6f), 0x7E);
  EXPECT_EQ(F32ToF8E4M3(-1e6f), 0xFE);
  EXPECT_EQ(F32ToF8E4M3(1.0625f), 0x38);  // halfway between 1 and 1.125: to even (1)
  EXPECT_EQ(F32ToF8E4M3(1.1875f), 0x3A);  // halfway between 1.125 and 1.25: to even (1.25)
}

}  // namespace
}  // namespace kiln
