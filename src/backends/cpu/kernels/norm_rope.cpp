// RMSNorm (per group, optional weight) and rotate-half RoPE with partial ("proportional")
// rotation, following HF numerics: fp32 inverse frequencies theta^(-2j/head_dim), fp32 angles.
#include <cmath>

#include "backends/cpu/kernel_context.h"

namespace kiln::cpu {

void RmsNormKernel(const KernelContext& c) {
  const TensorArg& x = c.inputs[0];
  const TensorArg& weight = c.inputs[1];  // data == nullptr: no weight (V norm)
  const int64_t group = c.op->attrs.group_size;
  const int64_t groups = x.rows * x.columns / group;
  const float eps = c.op->attrs.eps;
  c.pool->ParallelFor(groups, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      const float* in = x.f32() + g * group;
      float* out = c.output.f32() + g * group;
      double sum_squares = 0.0;
      for (int64_t j = 0; j < group; ++j) sum_squares += static_cast<double>(in[j]) * in[j];
      const float inv = static_cast<float>(1.0 / std::sqrt(sum_squares / static_cast<double>(group) + eps));
      if (weight.data) {
        for (int64_t j = 0; j < group; ++j) out[j] = in[j] * inv * WeightAt(weight, j);
      } else {
        for (int64_t j = 0; j < group; ++j) out[j] = in[j] * inv;
      }
    }
  }, 8);
}

void RopeKernel(const KernelContext& c) {
  const TensorArg& x = c.inputs[0];
  const int32_t* positions = c.inputs[1].i32();
  const int64_t d = c.op->attrs.head_dim, half = d / 2, rotary = c.op->attrs.rotary_dims;
  const int64_t heads = x.columns / d;
  const float theta = c.op->attrs.rope_theta;
  c.pool->ParallelFor(x.rows, [&](int64_t begin, int64_t end) {
    float cosines[kMaxRopeFrequencies], sines[kMaxRopeFrequencies];
    for (int64_t t = begin; t < end; ++t) {
      for (int64_t j = 0; j < rotary; ++j) {
        const float inv_freq = static_cast<float>(1.0 / std::pow(static_cast<double>(theta), static_cast<double>(2 * j) / static_cast<double>(d)));
        const float angle = static_cast<float>(positions[t]) * inv_freq;
        cosines[j] = std::cos(angle);
        sines[j] = std::sin(angle);
      }
      for (int64_t h = 0; h < heads; ++h) {
        const float* in = x.f32() + t * x.columns + h * d;
        float* out = c.output.f32() + t * x.columns + h * d;
        for (int64_t j = 0; j < half; ++j) {
          if (j < rotary) {
            const float a = in[j], b = in[j + half];
            out[j] = a * cosines[j] - b * sines[j];
            out[j + half] = b * cosines[j] + a * sines[j];
          } else {
            out[j] = in[j];
            out[j + half] = in[j + half];
          }
        }
      }
    }
  });
}

}  // namespace kiln::cpu
