#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kiln {
namespace {

TEST(DTypeTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(F32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Bf16ToF32(0x3f80), 1.0f);
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(F32ToBf16(1.0f + 1.0f / 256), 0x3f80);
  // 1 + 3*2^-8 is halfway between 1+2^-7 (odd mantissa) and 1+2^-6: rounds up to even.
  EXPECT_EQ(F32ToBf16(1.0f + 3.0f / 256), 0x3f82);
  EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(NAN))));
  // sqrt(3840) = 61.97 rounds to 62.0 in bf16 (docs/gemma4.md §4.2).
  EXPECT_EQ(Bf16ToF32(F32ToBf16(std::sqrt(3840.0f))), 62.0f);
}

TEST(DTypeTest, F16RoundTripsAndHandlesRanges) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0xc000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);       // largest normal
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(F32ToF16(1e6f), 0x7c00);           // overflow to infinity
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);
  for (uint32_t bits = 0; bits < 0x7c00; bits += 7) {  // every finite positive value class
    EXPECT_EQ(F32ToF16(F16ToF32(static_cast<uint16_t>(bits))), bits) << bits;
  }
}

TEST(DTypeTest, SafetensorsNames) {
  EXPECT_EQ(DTypeFromSafetensors("BF16").value(), DType::kBF16);
  auto bad = DTypeFromSafetensors("F64");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace kiln
