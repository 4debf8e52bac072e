// The loops of vector_math.h in plain C++ with no branches and no library calls, so that each
// ISA's translation unit (compiled with its own flags) turns them into that ISA's vectors.
// Everything here has internal linkage: the ISAs' copies must never be merged by the linker.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "backends/cpu/simd/vector_math.h"

namespace kiln::cpu {
namespace {

// e^y for y in [-87, 87] (callers clamp): y = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor
// series to r^7 (truncation below 2^-27 relative), 2^n built in the exponent bits.
inline float ExpClamped(float y) {
  constexpr float kLog2e = 1.44269504088896341f, kLn2High = 0.693145751953125f, kLn2Low = 1.42860682030941723e-6f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float shifted = y * kLog2e + kRound;
  const float n = shifted - kRound;
  const int32_t exponent = std::bit_cast<int32_t>(shifted) - std::bit_cast<int32_t>(kRound);
  const float r = (y - n * kLn2High) - n * kLn2Low;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * std::bit_cast<float>((exponent + 127) << 23);
}

inline float Clamp(float v, float low, float high) { return v < low ? low : v > high ? high : v; }

// tanh(z): an odd Taylor polynomial below |z| = 0.3125 (truncation below 2^-28 relative), above
// it (1 - e) / (1 + e) with e = e^(-2|z|) <= 0.54, which cancels nothing.
inline float Tanh(float z) {
  const float a = std::fabs(z);
  const float e = ExpClamped(-2.0f * Clamp(a, 0.0f, 40.0f));
  const float large = (1.0f - e) / (1.0f + e);
  const float s = z * z;
  float p = -1382.0f / 155925.0f;
  p = p * s + 62.0f / 2835.0f;
  p = p * s - 17.0f / 315.0f;
  p = p * s + 2.0f / 15.0f;
  p = p * s - 1.0f / 3.0f;
  const float small = a + a * s * p;
  const float t = a < 0.3125f ? small : large;
  return std::copysign(t, z);
}

void GeluMulLoop(const float* gate, const float* up, float* y, int64_t count) {
  constexpr float kSqrt2OverPi = 0.797884560802865355f;
  for (int64_t i = 0; i < count; ++i) {
    // 0.5 (1 + tanh(u)) is the logistic function of 2u: no cancellation for negative u.
    const float g = gate[i];
    const float u = kSqrt2OverPi * (g + 0.044715f * g * g * g);
    y[i] = g * up[i] / (1.0f + ExpClamped(Clamp(-2.0f * u, -87.0f, 87.0f)));
  }
}

void SoftcapLoop(const float* x, float cap, float* y, int64_t count) {
  const float inverse = 1.0f / cap;
  for (int64_t i = 0; i < count; ++i) y[i] = cap * Tanh(x[i] * inverse);
}

}  // namespace
}  // namespace kiln::cpu
