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
  EXPECT_EQ(DTypeBytes(DType::kQ5_0, 64), 44);
  EXPECT_EQ(DTypeBytes(DType::kQ5_1, 32), 24);
  EXPECT_EQ(DTypeBytes(DType::kQ4_1, 96), 60);
  EXPECT_EQ(DTypeBytes(DType::kQ5_K, 512), 352);
  EXPECT_EQ(DTypeBytes(DType::kQ5_K, 2112), -1);
  EXPECT_TRUE(DTypeRowsFit(DType::kQ5_0, 2112));  // Gemma 4 26B's ffn_down rows
  EXPECT_TRUE(DTypeRowsFit(DType::kQ5_1, 704));
  // The numbering is stored in .kiln files.
  EXPECT_EQ(static_cast<int>(DType::kQ5_0), 9);
  EXPECT_EQ(static_cast<int>(DType::kQ5_1), 10);
  EXPECT_EQ(static_cast<int>(DType::kQ4_1), 11);
  EXPECT_EQ(static_cast<int>(DType::kQ5_K), 12);
  EXPECT_EQ(kNumDTypes, 13);
  EXPECT_STREQ(DTypeName(DType::kQ5_0), "q5_0");
  EXPECT_STREQ(DTypeName(DType::kQ5_1), "q5_1");
  EXPECT_STREQ(DTypeName(DType::kQ4_1), "q4_1");
  EXPECT_STREQ(DTypeName(DType::kQ5_K), "q5_k");
  EXPECT_EQ(DTypeBytes(DType::kQ4_K, 100), -1);
  EXPECT_EQ(DTypeBytes(DType::kBF16, 3), 6);
  EXPECT_FALSE(DTypeRowsFit(DType::kQ6_K, 2112));
  EXPECT_TRUE(DTypeRowsFit(DType::kQ8_0, 2112));
  EXPECT_EQ(DTypeSize(DType::kQ8_0), 0u);
  for (int i = 0; i < kNumDTypes; ++i) EXPECT_EQ(DTypeFromName(DTypeName(static_cast<DType>(i))), static_cast<DType>(i));
  EXPECT_FALSE(DTypeFromName("q3_k").has_value());
}

TEST(QuantTest, RoundTripErrorsAreThoseOfEachFormat) {
  const std::vector<float> row = RandomRow(4096, 7);
  // Gaussian rows: the relative RMS error each bit width gives (measured, with headroom).
  EXPECT_LT(RoundTripError(DType::kQ8_0, row), 0.01);
  EXPECT_LT(RoundTripError(DType::kQ6_K, row), 0.04);
  EXPECT_LT(RoundTripError(DType::kQ4_0, row), 0.12);
  EXPECT_LT(RoundTripError(DType::kQ4_K, row), 0.11);
  EXPECT_LT(RoundTripError(DType::kF8_E4M3, row), 0.05);
  EXPECT_LT(RoundTripError(DType::kQ5_0, row), 0.06);
  EXPECT_LT(RoundTripError(DType::kQ5_1, row), 0.05);
  EXPECT_LT(RoundTripError(DType::kQ4_1, row), 0.10);
  EXPECT_LT(RoundTripError(DType::kQ5_K, row), 0.05);
  // One more bit halves the step: the 5-bit formats beat their 4-bit counterparts clearly.
  EXPECT_LT(RoundTripError(DType::kQ5_0, row), 0.6 * RoundTripError(DType::kQ4_0, row));
  EXPECT_LT(RoundTripError(DType::kQ5_1, row), 0.6 * RoundTripError(DType::kQ4_1, row));
  EXPECT_LT(RoundTripError(DType::kQ5_K, row), 0.6 * RoundTripError(DType::kQ4_K, row));
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

TEST(QuantTest, Q5_0MatchesTheReferenceArithmetic) {
  // d = (signed value of largest magnitude) / -16; q = min(31, trunc(x / d + 16.5)).
  std::vector<float> row(32, 0.0f);
  row[3] = -16.0f;
  row[20] = 16.0f;
  row[5] = 1.0f;
  row[17] = -3.0f;
  BlockQ5_0 block;
  QuantizeRow(DType::kQ5_0, row.data(), 32, &block);
  EXPECT_EQ(F16ToF32(block.d), 1.0f);
  const uint32_t qh = Q5HighBits(block.qh);
  auto q_of = [&](int e) { return (e < 16 ? block.qs[e] & 0xF : block.qs[e - 16] >> 4) | (((qh >> e) & 1) << 4); };
  EXPECT_EQ(q_of(3), 0);    // -16 -> 0
  EXPECT_EQ(q_of(20), 31);  // 16 -> 32 -> 31
  EXPECT_EQ(q_of(5), 17);   // 1 + 16.5 = 17.5 -> 17: the 5th bit set
  EXPECT_EQ(q_of(17), 13);  // -3 + 16.5 = 13.5 -> 13
  EXPECT_EQ(q_of(0), 16);
  std::vector<float> back(32);
  DequantizeRow(DType::kQ5_0, &block, 32, back.data());
  EXPECT_EQ(back[3], -16.0f);
  EXPECT_EQ(back[20], 15.0f);
  EXPECT_EQ(back[5], 1.0f);
  EXPECT_EQ(back[17], -3.0f);
  EXPECT_EQ(back[0], 0.0f);
}

TEST(QuantTest, Q5_0DecodesEachHighBitFromItsOwnPosition) {
  // Element j's 5th bit is bit j of qh (little-endian u32), for j in both nibble halves.
  for (int e = 0; e < 32; ++e) {
    BlockQ5_0 block{};
    block.d = F32ToF16(1.0f);
    const uint32_t qh = 1u << e;
    for (int i = 0; i < 4; ++i) block.qh[i] = static_cast<uint8_t>(qh >> (8 * i));
    std::vector<float> back(32);
    DequantizeRow(DType::kQ5_0, &block, 32, back.data());
    for (int k = 0; k < 32; ++k) EXPECT_EQ(back[k], k == e ? 0.0f : -16.0f) << "bit " << e << " element " << k;
  }
}

TEST(QuantTest, Q4_1AndQ5_1MatchTheReferenceArithmetic) {
  // m = min, d = (max - min) / 15 or / 31, q = min(top, trunc((x - min) / d + 0.5)).
  std::vector<float> row(32, 2.0f);
  row[0] = 2.0f;
  row[1] = 17.0f;   // max: d = 1 (q4_1)
  row[18] = 9.4f;   // 7.4 + 0.5 -> 7
  row[19] = 9.6f;   // 7.6 + 0.5 -> 8
  BlockQ4_1 q4;
  QuantizeRow(DType::kQ4_1, row.data(), 32, &q4);
  EXPECT_EQ(F16ToF32(q4.d), 1.0f);
  EXPECT_EQ(F16ToF32(q4.m), 2.0f);
  EXPECT_EQ(q4.qs[1] & 0xF, 15);
  EXPECT_EQ(q4.qs[2] >> 4, 7);
  EXPECT_EQ(q4.qs[3] >> 4, 8);
  std::vector<float> back(32);
  DequantizeRow(DType::kQ4_1, &q4, 32, back.data());
  EXPECT_EQ(back[1], 17.0f);
  EXPECT_EQ(back[18], 9.0f);
  EXPECT_EQ(back[19], 10.0f);
  EXPECT_EQ(back[0], 2.0f);

  row[1] = 33.0f;  // q5_1: d = 31 / 31 = 1
  BlockQ5_1 q5;
  QuantizeRow(DType::kQ5_1, row.data(), 32, &q5);
  EXPECT_EQ(F16ToF32(q5.d), 1.0f);
  EXPECT_EQ(F16ToF32(q5.m), 2.0f);
  const uint32_t qh = Q5HighBits(q5.qh);
  EXPECT_EQ((q5.qs[1] & 0xF) | (((qh >> 1) & 1) << 4), 31);
  DequantizeRow(DType::kQ5_1, &q5, 32, back.data());
  EXPECT_EQ(back[1], 33.0f);
  EXPECT_EQ(back[18], 9.0f);
  EXPECT_EQ(back[19], 10.0f);
}

TEST(QuantTest, Q5KDecodesTheDocumentedLayout) {
  // A hand-packed block: d = 1, dmin = 0.5, sub-block j has scale j + 1 and minimum 2j. In chunk
  // c, element l takes bit 2c of qh[l], element 32 + l bit 2c + 1.
  BlockQ5_K block{};
  block.d = F32ToF16(1.0f);
  block.dmin = F32ToF16(0.5f);
  for (int j = 0; j < 8; ++j) {
    const int sc = j + 1, m = 2 * j;
    if (j < 4) {
      block.scales[j] = static_cast<uint8_t>(sc);
      block.scales[j + 4] = static_cast<uint8_t>(m);
    } else {
      block.scales[j + 4] = static_cast<uint8_t>((sc & 0xF) | ((m & 0xF) << 4));
      block.scales[j - 4] |= static_cast<uint8_t>((sc >> 4) << 6);
      block.scales[j] |= static_cast<uint8_t>((m >> 4) << 6);
    }
  }
  for (int l = 0; l < 32; ++l) {
    block.qs[32 * 0 + l] = static_cast<uint8_t>(l & 0xF);          // chunk 0: low nibble l%16, high 0
    block.qs[32 * 2 + l] = static_cast<uint8_t>(0xF0 | (l & 0xF)); // chunk 2: high nibble 15
  }
  block.qh[5] = 1u << 0;        // element 5 (chunk 0, low half): +16
  block.qh[7] = 1u << 5;        // element 64 * 2 + 32 + 7 (chunk 2, high half): +16
  std::vector<float> y(256);
  DequantizeRow(DType::kQ5_K, &block, 256, y.data());
  EXPECT_EQ(y[4], 1.0f * 4 - 0.0f);            // sub-block 0: scale 1, minimum 0
  EXPECT_EQ(y[5], 1.0f * (5 + 16) - 0.0f);
  EXPECT_EQ(y[32 + 5], 0.0f - 0.5f * 2);         // sub-block 1: q 0, minimum 2
  EXPECT_EQ(y[128 + 3], 5.0f * 3 - 0.5f * 8);    // sub-block 4: scale 5, minimum 8
  EXPECT_EQ(y[160 + 7], 6.0f * (15 + 16) - 0.5f * 10);  // sub-block 5: scale 6, minimum 10, 5th bit
  EXPECT_EQ(y[160 + 6], 6.0f * 15 - 0.5f * 10);
  // The quantizer's round trip of this decoded block stays within one step of sub-block j's scale.
  BlockQ5_K again;
  QuantizeRow(DType::kQ5_K, y.data(), 256, &again);
  std::vector<float> back(256);
  DequantizeRow(DType::kQ5_K, &again, 256, back.data());
  for (int e = 0; e < 256; ++e) EXPECT_NEAR(back[e], y[e], 0.75 * (e / 32 + 1)) << e;
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
