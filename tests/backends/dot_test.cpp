// Every dot-product table this build compiled and this CPU runs, against a double-precision
// reference, over lengths that exercise every tail path and Gemma 4's real widths.
#include "backends/cpu/simd/dot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/dtype.h"

namespace kiln::cpu {
namespace {

TEST(DotKernelsTest, EveryIsaMatchesReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::vector<const DotKernels*> tables = SupportedDotKernels();
  ASSERT_GE(tables.size(), 1u);
  for (int64_t k : {1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 256, 512, 3840}) {
    std::vector<float> x(static_cast<size_t>(k * kMaxRows)), w(static_cast<size_t>(k));
    std::vector<uint16_t> w_bf16(static_cast<size_t>(k)), w_f16(static_cast<size_t>(k));
    for (float& v : x) v = normal(rng);
    for (size_t i = 0; i < w.size(); ++i) {
      w_bf16[i] = F32ToBf16(normal(rng));
      w_f16[i] = F32ToF16(normal(rng));
      w[i] = normal(rng);
    }
    for (int rows = 1; rows <= kMaxRows; ++rows) {
      for (const DotKernels* table : tables) {
        float out_f32[kMaxRows], out_bf16[kMaxRows], out_f16[kMaxRows];
        table->f32(x.data(), k, rows, w.data(), k, out_f32, 1);
        table->bf16(x.data(), k, rows, w_bf16.data(), k, out_bf16, 1);
        table->f16(x.data(), k, rows, w_f16.data(), k, out_f16, 1);
        for (int r = 0; r < rows; ++r) {
          double ref_f32 = 0, ref_bf16 = 0, ref_f16 = 0, magnitude = 0, bf16_products = 0;
          for (int64_t i = 0; i < k; ++i) {
            const double xv = x[static_cast<size_t>(r * k + i)];
            ref_f32 += xv * w[static_cast<size_t>(i)];
            ref_bf16 += xv * Bf16ToF32(w_bf16[static_cast<size_t>(i)]);
            ref_f16 += xv * F16ToF32(w_f16[static_cast<size_t>(i)]);
            magnitude += std::abs(xv);
            bf16_products += std::abs(xv * Bf16ToF32(w_bf16[static_cast<size_t>(i)]));
          }
          // fp32 accumulation: error grows like sqrt(k) * eps * sum|x*w|; 1e-6 * sum|x| is ample.
          const double tolerance = 1e-6 * magnitude * 4 + 1e-6;
          EXPECT_NEAR(out_f32[r], ref_f32, tolerance) << table->isa << " k=" << k << " rows=" << rows;
          // Inexact tables round each activation to bf16 (relative error <= 2^-9): the dot is off
          // by at most 2^-9 * sum|x*w|; 2^-8 leaves room for the fp32 accumulation.
          const double bf16_tolerance = table->exact ? tolerance : std::ldexp(bf16_products, -8) + tolerance;
          EXPECT_NEAR(out_bf16[r], ref_bf16, bf16_tolerance) << table->isa << " k=" << k;
          EXPECT_NEAR(out_f16[r], ref_f16, tolerance) << table->isa << " k=" << k;
        }
      }
    }
  }
}

TEST(DotKernelsTest, GemvMatchesDotOnEveryIsa) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t k : {1, 15, 16, 17, 33, 640, 3840}) {
    const int64_t stride = k + 5;  // rows not contiguous: the stride is honoured
    std::vector<float> x(static_cast<size_t>(k)), w(static_cast<size_t>(stride * kMaxRows));
    std::vector<uint16_t> w_bf16(w.size()), w_f16(w.size());
    for (float& v : x) v = normal(rng);
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] = normal(rng);
      w_bf16[i] = F32ToBf16(normal(rng));
      w_f16[i] = F32ToF16(normal(rng));
    }
    for (const DotKernels* table : SupportedDotKernels()) {
      for (int count = 1; count <= kMaxRows; ++count) {
        float got[3][kMaxRows], want[3][kMaxRows];
        table->gemv_f32(x.data(), w.data(), stride, k, count, got[0]);
        table->gemv_bf16(x.data(), w_bf16.data(), stride, k, count, got[1]);
        table->gemv_f16(x.data(), w_f16.data(), stride, k, count, got[2]);
        for (int j = 0; j < count; ++j) {
          table->f32(x.data(), 0, 1, w.data() + j * stride, k, &want[0][j], 1);
          table->bf16(x.data(), 0, 1, w_bf16.data() + j * stride, k, &want[1][j], 1);
          table->f16(x.data(), 0, 1, w_f16.data() + j * stride, k, &want[2][j], 1);
          double magnitude = 0;
          for (float v : x) magnitude += std::abs(v);
          for (int d = 0; d < 3; ++d) {
            EXPECT_NEAR(got[d][j], want[d][j], 1e-5 * magnitude + 1e-5) << table->isa << " k=" << k << " count=" << count;
          }
        }
      }
    }
  }
}

// Every tile height (1..4 activation rows, the leftover rows of a verify step or a small batch)
// against the row kernels, with k below, at and past one vector and with a tail.
TEST(DotKernelsTest, TilesMatchRowKernels) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t k : {1, 16, 17, 384, 645}) {
    std::vector<float> x(static_cast<size_t>(4 * k)), w(static_cast<size_t>(4 * k));
    std::vector<uint16_t> w_bf16(w.size()), w_f16(w.size());
    for (float& v : x) v = normal(rng);
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] = normal(rng);
      w_bf16[i] = F32ToBf16(w[i]);
      w_f16[i] = F32ToF16(w[i]);
    }
    for (const DotKernels* table : SupportedDotKernels()) {
      if (!table->tile_f32) continue;
      for (int rows = 1; rows <= 4; ++rows) {
        float got[16], want[16];
        auto check = [&](const char* dtype) {
          for (int i = 0; i < 4 * rows; ++i) {
            EXPECT_NEAR(got[i], want[i], 1e-4 * std::sqrt(static_cast<double>(k))) << table->isa << " " << dtype << " k=" << k << " rows=" << rows;
          }
        };
        std::fill(got, got + 16, NAN);
        table->tile_f32(x.data(), k, rows, w.data(), k, k, got, 4);
        for (int j = 0; j < 4; ++j) table->f32(x.data(), k, rows, w.data() + j * k, k, want + j, 4);
        check("f32");
        for (int i = 4 * rows; i < 16; ++i) EXPECT_TRUE(std::isnan(got[i])) << "row " << i / 4 << " written by a tile of " << rows;
        if (table->tile_bf16) {
          table->tile_bf16(x.data(), k, rows, w_bf16.data(), k, k, got, 4);
          for (int j = 0; j < 4; ++j) table->bf16(x.data(), k, rows, w_bf16.data() + j * k, k, want + j, 4);
          check("bf16");
        }
        table->tile_f16(x.data(), k, rows, w_f16.data(), k, k, got, 4);
        for (int j = 0; j < 4; ++j) table->f16(x.data(), k, rows, w_f16.data() + j * k, k, want + j, 4);
        check("f16");
      }
    }
  }
}

TEST(DotKernelsTest, SelectionPicksTheBestExactTable) {
  const DotKernels* best = nullptr;
  for (const DotKernels* table : SupportedDotKernels()) if (table->exact) best = table;
  EXPECT_EQ(&SelectDotKernels(), best);
  EXPECT_TRUE(SelectDotKernels().exact);
}

}  // namespace
}  // namespace kiln::cpu
