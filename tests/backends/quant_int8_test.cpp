// The int8-activation kernels (quant_int8.h) of every table this CPU runs, against the scalar
// reference: the weights dequantized by DequantizeRow times the unrounded f32 activations, in
// double. They may differ by the activation rounding only, so each result must lie within
//   sum over activation blocks b of (d_b / 2) * sum_{i in b} |w_i|        (|x - d q| <= d / 2)
// plus f32 rounding: 1e-5 of sum |x w| (as quant_kernel_test.cpp allows the f32 path), and for
// the formats with minimums (q4_1, q5_1, q4_k, q5_k), where the kernel scales the integer sums and
// the minimum term separately instead of rounding each d * q + m, 2^-20 of sum |x| * max |w|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/kernel_context.h"
#include "backends/cpu/simd/dot.h"
#include "backends/cpu/simd/quant_int8.h"
#include "core/quant.h"
#include "random_block_rows.h"

namespace kiln::cpu {
namespace {

constexpr DType kInt8Types[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kQ5_0,
                                DType::kQ5_1, DType::kQ4_1, DType::kQ5_K};

bool HasMinimum(DType dtype) {
  return dtype == DType::kQ4_1 || dtype == DType::kQ5_1 || dtype == DType::kQ4_K || dtype == DType::kQ5_K;
}

int64_t ActBlockElements(DType dtype) { return DTypeBlockElements(dtype) == 256 ? 256 : 32; }

// The activation scale d of each block of a row and the rounded values d * q, by the reference
// quantizer.
struct Rounded {
  std::vector<double> d, values;
};
Rounded RoundedActivations(DType dtype, const float* x, int64_t k) {
  const int64_t per = ActBlockElements(dtype);
  std::vector<uint8_t> q(static_cast<size_t>(Int8ActRowBytes(dtype, k)));
  Rounded rounded;
  rounded.d.resize(static_cast<size_t>(k / per));
  rounded.values.resize(static_cast<size_t>(k));
  auto put = [&](size_t b, float d, const int8_t* values) {
    rounded.d[b] = d;
    for (int64_t i = 0; i < per; ++i) rounded.values[b * per + i] = static_cast<double>(d) * values[i];
  };
  if (per == 32) {
    QuantizeAct32Reference(x, k, 1, k, q.data());
    const auto* blocks = reinterpret_cast<const ActBlock32*>(q.data());
    for (size_t b = 0; b < rounded.d.size(); ++b) put(b, blocks[b].d, blocks[b].q);
  } else {
    QuantizeAct256Reference(x, k, 1, k, q.data());
    const auto* blocks = reinterpret_cast<const ActBlock256*>(q.data());
    for (size_t b = 0; b < rounded.d.size(); ++b) put(b, blocks[b].d, blocks[b].q);
  }
  return rounded;
}

// value: sum_i x[i] * w[i], within tolerance (the bound stated at the top of this file).
// rounded: sum_i (d q)[i] * w[i], what the integer kernels compute, within f32 rounding alone
// (rounded_tolerance): a kernel that mis-scales a block or drops an offset fails this much
// tighter check even where the rounding bound would hide it.
struct Expected {
  double value = 0, tolerance = 0, rounded = 0, rounded_tolerance = 0;
};

Expected Reference(DType dtype, const float* x, const float* w, int64_t k) {
  const int64_t per = ActBlockElements(dtype);
  const Rounded r = RoundedActivations(dtype, x, k);
  Expected e;
  double rounding = 0, magnitude = 0, rounded_magnitude = 0, sum_x = 0, largest = 0;
  for (int64_t i = 0; i < k; ++i) {
    const double xr = r.values[static_cast<size_t>(i)];
    e.value += static_cast<double>(x[i]) * w[i];
    e.rounded += xr * w[i];
    rounding += r.d[static_cast<size_t>(i / per)] / 2 * std::abs(w[i]);
    magnitude += std::abs(static_cast<double>(x[i]) * w[i]);
    rounded_magnitude += std::abs(xr * w[i]);
    sum_x += std::abs(x[i]);
    largest = std::max(largest, std::abs(static_cast<double>(w[i])));
  }
  e.tolerance = rounding * (1 + 1e-5) + 1e-5 * magnitude + 1e-7;
  e.rounded_tolerance = 1e-5 * rounded_magnitude + 1e-7;
  if (HasMinimum(dtype)) {
    e.tolerance += std::ldexp(sum_x * 2 * largest, -20);
    e.rounded_tolerance += std::ldexp(sum_x * 2 * largest, -20);
  }
  return e;
}

std::vector<const Int8DotKernels*> Int8Tables() {
  std::vector<const Int8DotKernels*> tables;
  for (const DotKernels* table : SupportedDotKernels()) {
    if (table->quant->int8 != nullptr) tables.push_back(table->quant->int8);
  }
  return tables;
}

// An x86 CPU with AVX2 has int8 kernels: the tests below must not pass by testing nothing.
TEST(QuantInt8Test, AnAvx2CpuHasInt8Kernels) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_FALSE(Int8Tables().empty());
  }
#endif
}

// The SIMD quantizers write exactly the reference's bytes (scales, sums and values), on random
// rows, a row of zeros and a row with a huge outlier.
TEST(QuantInt8Test, QuantizersMatchTheReferenceBytes) {
  std::mt19937 rng(41);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t k = 3 * 256, rows = 4;
  std::vector<float> x(static_cast<size_t>(rows * k));
  for (float& v : x) v = normal(rng);
  std::fill(x.begin() + k, x.begin() + 2 * k, 0.0f);
  x[2 * k + 5] = 1e30f;
  for (const Int8DotKernels* table : Int8Tables()) {
    for (DType dtype : {DType::kQ4_0, DType::kQ4_K}) {
      const size_t bytes = static_cast<size_t>(rows * Int8ActRowBytes(dtype, k));
      std::vector<uint8_t> want(bytes), got(bytes, 0xAB);
      (dtype == DType::kQ4_0 ? QuantizeAct32Reference : QuantizeAct256Reference)(x.data(), k, rows, k, want.data());
      table->QuantizerFor(dtype)(x.data(), k, rows, k, got.data());
      EXPECT_EQ(std::memcmp(want.data(), got.data(), bytes), 0) << table->isa << " " << DTypeName(dtype);
    }
  }
}

// Every format x rows {1..5, 8, 9} x counts 1..6, odd and even block counts, padded strides.
TEST(QuantInt8Test, EveryTableAndFormatIsWithinTheRoundingBound) {
  std::mt19937 rng(43);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DType dtype : kInt8Types) {
    const int64_t per_block = DTypeBlockElements(dtype);
    for (int64_t blocks : {1, 3, 7, 10}) {
      const int64_t k = blocks * per_block;
      const int64_t row_bytes = DTypeBytes(dtype, k) + DTypeBlockBytes(dtype);  // one block of padding
      const int64_t max_rows = 9, max_count = 6, out_stride = max_count + 2;
      const std::vector<uint8_t> w = RandomBlockRows(dtype, max_count, k, row_bytes, rng);
      std::vector<float> x(static_cast<size_t>(max_rows * k));
      for (float& v : x) v = normal(rng);
      for (int64_t i = 0; i < k; i += 37) x[static_cast<size_t>(i)] *= 20;  // outliers widen some blocks' scales
      std::vector<float> dequantized(static_cast<size_t>(max_count * k));
      for (int64_t j = 0; j < max_count; ++j) DequantizeRow(dtype, w.data() + j * row_bytes, k, dequantized.data() + j * k);
      std::vector<Expected> want(static_cast<size_t>(max_rows * max_count));
      for (int64_t r = 0; r < max_rows; ++r) {
        for (int64_t j = 0; j < max_count; ++j) {
          want[static_cast<size_t>(r * max_count + j)] = Reference(dtype, x.data() + r * k, dequantized.data() + j * k, k);
        }
      }
      for (const Int8DotKernels* table : Int8Tables()) {
        const Int8DotFn fn = table->For(dtype);
        ASSERT_NE(fn, nullptr) << table->isa << " " << DTypeName(dtype);
        std::vector<uint8_t> xq(static_cast<size_t>(max_rows * Int8ActRowBytes(dtype, k)));
        table->QuantizerFor(dtype)(x.data(), k, max_rows, k, xq.data());
        for (int64_t rows : {1, 2, 3, 4, 5, 8, 9}) {
          for (int64_t count = 1; count <= max_count; ++count) {
            std::vector<float> out(static_cast<size_t>(max_rows * out_stride), -12345.0f);
            fn(xq.data(), rows, w.data(), row_bytes, count, k, out.data(), out_stride);
            for (int64_t r = 0; r < max_rows; ++r) {
              for (int64_t j = 0; j < out_stride; ++j) {
                const float got = out[static_cast<size_t>(r * out_stride + j)];
                if (r >= rows || j >= count) {  // nothing outside rows x count is written
                  ASSERT_EQ(got, -12345.0f) << table->isa << " " << DTypeName(dtype) << " r=" << r << " j=" << j;
                  continue;
                }
                const Expected& e = want[static_cast<size_t>(r * max_count + j)];
                ASSERT_NEAR(got, e.value, e.tolerance) << table->isa << " " << DTypeName(dtype) << " k=" << k
                                                       << " rows=" << rows << " count=" << count << " r=" << r << " j=" << j;
                ASSERT_NEAR(got, e.rounded, e.rounded_tolerance) << table->isa << " " << DTypeName(dtype) << " k=" << k
                                                                 << " rows=" << rows << " count=" << count << " r=" << r
                                                                 << " j=" << j << " (against the rounded activations)";
              }
            }
          }
        }
      }
    }
  }
}

// The linear op with scratch takes the int8 path (rows 1, a few, and more than one 64-row tile;
// quant_kernel_test.cpp runs it without scratch, the f32 path): the same bound holds.
TEST(QuantInt8Test, LinearOpWithScratchRoundsActivationsWithinTheBound) {
  std::mt19937 rng(47);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t N = 37;
  ThreadPool pool{2};
  for (DType dtype : kInt8Types) {
    const int64_t K = DTypeBlockElements(dtype) == 256 ? 3 * 256 : 7 * 32;  // odd block counts
    std::vector<float> source(static_cast<size_t>(N * K));
    for (float& v : source) v = normal(rng);
    const int64_t row_bytes = DTypeBytes(dtype, K);
    std::vector<uint8_t> w(static_cast<size_t>(N * row_bytes));
    for (int64_t n = 0; n < N; ++n) QuantizeRow(dtype, source.data() + n * K, K, w.data() + n * row_bytes);
    std::vector<float> dequantized(source.size());
    DequantizeRow(dtype, w.data(), N * K, dequantized.data());
    for (const DotKernels* table : SupportedDotKernels()) {
      if (table->quant->int8 == nullptr) continue;
      for (int64_t rows : {1, 2, 3, 4, 8, 70}) {
        std::vector<float> x(static_cast<size_t>(rows * K)), y(static_cast<size_t>(rows * N), 0.0f);
        for (float& v : x) v = normal(rng);
        std::vector<uint8_t> scratch(static_cast<size_t>(Int8ScratchBytes(dtype, rows, K)) + 64);
        Op op;
        op.kind = OpKind::kLinear;
        op.name = "under_test";
        KernelContext context;
        context.op = &op;
        context.pool = &pool;
        context.dot = table;
        context.inputs[0] = {x.data(), DType::kF32, rows, K};
        context.inputs[1] = {w.data(), dtype, N, K};
        context.output = {y.data(), DType::kF32, rows, N};
        context.scratch = reinterpret_cast<float*>(scratch.data());
        KernelFor(OpKind::kLinear)(context);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t n = 0; n < N; ++n) {
            const Expected e = Reference(dtype, x.data() + r * K, dequantized.data() + n * K, K);
            ASSERT_NEAR(y[static_cast<size_t>(r * N + n)], e.value, e.tolerance)
                << table->isa << " " << DTypeName(dtype) << " rows=" << rows << " r=" << r << " n=" << n;
            ASSERT_NEAR(y[static_cast<size_t>(r * N + n)], e.rounded, e.rounded_tolerance)
                << table->isa << " " << DTypeName(dtype) << " rows=" << rows << " r=" << r << " n=" << n << " (rounded)";
          }
        }
      }
    }
  }
}

// The MoE kernel with block-format experts: h is rounded once per token for every expert's
// gate_up, each expert's activation for its down, in the scratch CpuBackend::ScratchBytes plans
// (canaries after it must survive). Against the same kernel on the f32 path (the table with its
// int8 kernels taken out): routing is identical (the router stays f32), and the outputs agree
// to the activation rounding: 1.0-1.9 % of the largest output here (measured), checked at 3 %.
TEST(QuantInt8Test, MoeKernelRoundsTokenAndExpertActivationsInItsScratch) {
  std::mt19937 rng(53);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t T = 3, H = 256, M = 256, E = 4;
  ThreadPool pool{2};
  std::vector<float> x(static_cast<size_t>(T * H)), h(static_cast<size_t>(T * H)), router(static_cast<size_t>(E * H));
  std::vector<float> router_scale(static_cast<size_t>(H)), expert_scale(static_cast<size_t>(E));
  for (auto* v : {&x, &h, &router, &router_scale, &expert_scale}) {
    for (float& f : *v) f = normal(rng);
  }
  for (DType dtype : kInt8Types) {
    std::vector<float> gate_up_f32(static_cast<size_t>(E * 2 * M * H)), down_f32(static_cast<size_t>(E * H * M));
    for (float& f : gate_up_f32) f = normal(rng) * 0.1f;
    for (float& f : down_f32) f = normal(rng) * 0.1f;
    std::vector<uint8_t> gate_up(static_cast<size_t>(DTypeBytes(dtype, E * 2 * M * H))), down(static_cast<size_t>(DTypeBytes(dtype, E * H * M)));
    QuantizeRow(dtype, gate_up_f32.data(), E * 2 * M * H, gate_up.data());
    QuantizeRow(dtype, down_f32.data(), E * H * M, down.data());
    const int64_t scratch_bytes =
        MoeFloatScratchBytes(E, M, H) + Int8ScratchBytes(dtype, 1, H) + Int8ScratchBytes(dtype, 1, M);
    for (const DotKernels* table : SupportedDotKernels()) {
      if (table->quant->int8 == nullptr) continue;
      QuantDotKernels exact_quant = *table->quant;
      exact_quant.int8 = nullptr;
      DotKernels exact = *table;
      exact.quant = &exact_quant;
      std::vector<float> want(static_cast<size_t>(T * H)), got(static_cast<size_t>(T * H));
      for (const DotKernels* run_table : {static_cast<const DotKernels*>(&exact), table}) {
        std::vector<uint8_t> scratch(static_cast<size_t>(scratch_bytes + 64), 0xCD);
        Op op;
        op.kind = OpKind::kMoe;
        op.name = "under_test";
        op.attrs.top_k = 2;
        KernelContext context;
        context.op = &op;
        context.pool = &pool;
        context.dot = run_table;
        context.inputs[0] = {x.data(), DType::kF32, T, H};
        context.inputs[1] = {h.data(), DType::kF32, T, H};
        context.inputs[2] = {router.data(), DType::kF32, E, H};
        context.inputs[3] = {router_scale.data(), DType::kF32, H, 1};
        context.inputs[4] = {expert_scale.data(), DType::kF32, E, 1};
        context.inputs[5] = {gate_up.data(), dtype, E, 2 * M * H};
        context.inputs[6] = {down.data(), dtype, E, H * M};
        std::vector<float>& y = run_table == table ? got : want;
        context.output = {y.data(), DType::kF32, T, H};
        context.scratch = reinterpret_cast<float*>(scratch.data());
        KernelFor(OpKind::kMoe)(context);
        for (int64_t i = scratch_bytes; i < scratch_bytes + 64; ++i) {
          ASSERT_EQ(scratch[static_cast<size_t>(i)], 0xCD) << table->isa << " " << DTypeName(dtype) << " byte " << i;
        }
      }
      float largest = 0, worst = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        largest = std::max(largest, std::abs(want[i]));
        worst = std::max(worst, std::abs(got[i] - want[i]));
      }
      EXPECT_GT(largest, 0.0f);
      EXPECT_GT(worst, 0.0f) << table->isa << " " << DTypeName(dtype) << ": the int8 path was not taken";
      EXPECT_LE(worst, 0.03f * largest) << table->isa << " " << DTypeName(dtype) << ": largest |y| " << largest;
    }
  }
}

}  // namespace
}  // namespace kiln::cpu
