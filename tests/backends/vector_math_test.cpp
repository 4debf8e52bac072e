// The GELU and softcap loops of every ISA table this build compiled and this CPU runs, against
// the functions in double precision, over a dense sweep, both saturations and the special values.
#include "backends/cpu/simd/vector_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/simd/dot.h"

namespace kiln::cpu {
namespace {

// -40 .. 40 in steps of 1/64, tiny values, and odd lengths (vector tails).
std::vector<float> Sweep() {
  std::vector<float> values;
  for (int i = -2560; i <= 2560; ++i) values.push_back(static_cast<float>(i) / 64.0f);
  for (float tiny : {1e-30f, 1e-12f, 3e-8f, 1e-5f, 0.01f, 0.3124f, 0.3126f}) {
    values.push_back(tiny);
    values.push_back(-tiny);
  }
  values.push_back(-0.0f);
  return values;
}

TEST(VectorMathTest, GeluMulMatchesDoublePrecisionForEveryIsa) {
  const std::vector<float> gate = Sweep();
  std::vector<float> up(gate.size());
  for (size_t i = 0; i < up.size(); ++i) up[i] = 0.5f + static_cast<float>(i % 7) * 0.75f * (i % 2 ? -1.0f : 1.0f);
  for (const DotKernels* table : SupportedDotKernels()) {
    SCOPED_TRACE(table->isa);
    ASSERT_NE(table->math, nullptr);
    for (const size_t count : {gate.size(), size_t{1}, size_t{5}, size_t{17}}) {
      std::vector<float> y(count, std::numeric_limits<float>::quiet_NaN());
      table->math->gelu_mul(gate.data(), up.data(), y.data(), static_cast<int64_t>(count));
      int failures = 0;
      for (size_t i = 0; i < count && failures < 5; ++i) {
        const double g = gate[i], u = std::sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g);
        const double expected = 0.5 * g * (1.0 + std::tanh(u)) * up[i];
        // 8 ulp of the value, and the rounding of u in f32 (which moves the negative tail's
        // exp(-2u) by |2u| ulp relative) within 1e-7 of |g up|.
        const double bound = 1e-6 * std::fabs(expected) + 1e-7 * std::fabs(g * up[i]);
        if (!(std::fabs(y[i] - expected) <= bound)) {
          ADD_FAILURE() << "gelu_mul(" << gate[i] << ") * " << up[i] << " = " << y[i] << ", expected " << expected;
          ++failures;
        }
      }
    }
  }
}

TEST(VectorMathTest, SoftcapMatchesDoublePrecisionForEveryIsa) {
  std::vector<float> x = Sweep();
  for (float& v : x) v *= 2.0f;  // logits to +-80 against a cap of 30
  for (float special : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), 1e30f, -1e30f}) x.push_back(special);
  for (const DotKernels* table : SupportedDotKernels()) {
    SCOPED_TRACE(table->isa);
    ASSERT_NE(table->math, nullptr);
    for (const float cap : {30.0f, 50.0f}) {
      std::vector<float> y(x.size());
      table->math->softcap(x.data(), cap, y.data(), static_cast<int64_t>(x.size()));
      int failures = 0;
      for (size_t i = 0; i < x.size() && failures < 5; ++i) {
        const double expected = cap * std::tanh(static_cast<double>(x[i]) / cap);
        if (!(std::fabs(y[i] - expected) <= 1e-6 * std::fabs(expected)) || std::signbit(y[i]) != std::signbit(expected)) {
          ADD_FAILURE() << "softcap(" << x[i] << ", " << cap << ") = " << y[i] << ", expected " << expected;
          ++failures;
        }
      }
      const float nan = std::numeric_limits<float>::quiet_NaN();
      float out = 0.0f;
      table->math->softcap(&nan, cap, &out, 1);
      EXPECT_TRUE(std::isnan(out)) << "NaN logits stay NaN";
    }
  }
}

}  // namespace
}  // namespace kiln::cpu
