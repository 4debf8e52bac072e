// Elementwise and copy kernels. Small next to linear/attention; parallel over rows.
#include <cmath>
#include <cstring>

#include "backends/cpu/kernel_context.h"
#include "core/quant.h"

namespace kiln::cpu {

float WeightAt(const TensorArg& weight, int64_t index) {
  switch (weight.dtype) {
    case DType::kF32: return static_cast<const float*>(weight.data)[index];
    case DType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(weight.data)[index]);
    case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(weight.data)[index]);
    case DType::kI32: return static_cast<float>(static_cast<const int32_t*>(weight.data)[index]);
    default: return 0.0f;  // block types: refused by CheckOp for the ops that read elements
  }
}

namespace {
// f(begin, end) over the output's elements, in ranges of at least 4096.
template <typename F>
void ForEachRange(const KernelContext& c, F&& f) {
  c.pool->ParallelFor(c.output.rows * c.output.columns, f, 4096);
}
template <typename F>
void ForEachElement(const KernelContext& c, F&& f) {
  ForEachRange(c, [&](int64_t begin, int64_t end) { for (int64_t i = begin; i < end; ++i) f(i); });
}
}  // namespace

void AddKernel(const KernelContext& c) {
  const float *a = c.inputs[0].f32(), *b = c.inputs[1].f32();
  float* y = c.output.f32();
  ForEachElement(c, [&](int64_t i) { y[i] = a[i] + b[i]; });
}

void MulKernel(const KernelContext& c) {
  const float *a = c.inputs[0].f32(), *b = c.inputs[1].f32();
  float* y = c.output.f32();
  ForEachElement(c, [&](int64_t i) { y[i] = a[i] * b[i]; });
}

void ScaleKernel(const KernelContext& c) {
  const float* x = c.inputs[0].f32();
  const float scale = c.op->attrs.scale;
  float* y = c.output.f32();
  ForEachElement(c, [&](int64_t i) { y[i] = x[i] * scale; });
}

void ScaleByWeightKernel(const KernelContext& c) {
  const float* x = c.inputs[0].f32();
  const float scale = WeightAt(c.inputs[1], 0);
  float* y = c.output.f32();
  ForEachElement(c, [&](int64_t i) { y[i] = x[i] * scale; });
}

void GeluMulKernel(const KernelContext& c) {
  const float *gate = c.inputs[0].f32(), *up = c.inputs[1].f32();
  float* y = c.output.f32();
  ForEachRange(c, [&](int64_t begin, int64_t end) { c.dot->math->gelu_mul(gate + begin, up + begin, y + begin, end - begin); });
}

void SoftcapKernel(const KernelContext& c) {
  const float* x = c.inputs[0].f32();
  const float cap = c.op->attrs.softcap;
  float* y = c.output.f32();
  ForEachRange(c, [&](int64_t begin, int64_t end) { c.dot->math->softcap(x + begin, cap, y + begin, end - begin); });
}

void SliceColumnsKernel(const KernelContext& c) {
  const TensorArg& x = c.inputs[0];
  const int64_t offset = c.op->attrs.column_offset, width = c.output.columns;
  for (int64_t r = 0; r < c.output.rows; ++r) {
    std::memcpy(c.output.f32() + r * width, x.f32() + r * x.columns + offset, static_cast<size_t>(width) * 4);
  }
}

void ConcatColumnsKernel(const KernelContext& c) {
  const TensorArg &a = c.inputs[0], &b = c.inputs[1];
  const int64_t width = c.output.columns;
  for (int64_t r = 0; r < c.output.rows; ++r) {
    std::memcpy(c.output.f32() + r * width, a.f32() + r * a.columns, static_cast<size_t>(a.columns) * 4);
    std::memcpy(c.output.f32() + r * width + a.columns, b.f32() + r * b.columns, static_cast<size_t>(b.columns) * 4);
  }
}

void GatherRowsKernel(const KernelContext& c) {
  const TensorArg& x = c.inputs[0];
  const int32_t* rows = c.inputs[1].i32();
  for (int64_t r = 0; r < c.output.rows; ++r) {
    std::memcpy(c.output.f32() + r * x.columns, x.f32() + rows[r] * x.columns, static_cast<size_t>(x.columns) * 4);
  }
}

void EmbedKernel(const KernelContext& c) {
  const int32_t* ids = c.inputs[0].i32();
  const TensorArg& table = c.inputs[1];
  const float scale = c.op->attrs.scale;
  const int64_t width = c.output.columns;
  c.pool->ParallelFor(c.output.rows, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      // Ids were validated against the vocabulary; clamp for tables smaller than it.
      const int64_t row = (ids[t] >= 0 && ids[t] < table.rows) ? ids[t] : 0;
      // One row of any weight dtype, block formats included (a row is whole blocks).
      float* y = c.output.f32() + t * width;
      DequantizeRow(table.dtype, static_cast<const uint8_t*>(table.data) + DTypeBytes(table.dtype, row * width), width, y);
      for (int64_t j = 0; j < width; ++j) y[j] *= scale;
    }
  });
}

}  // namespace kiln::cpu
