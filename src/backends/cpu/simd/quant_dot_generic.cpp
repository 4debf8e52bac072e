// The portable block-format kernels: each weight block dequantized by the scalar reference
// (core/quant.h) into a buffer, then multiplied into every activation row before the next block.
#include <algorithm>

#include "backends/cpu/simd/quant_dot.h"
#include "core/quant.h"

namespace kiln::cpu {

namespace {

constexpr int64_t kLargestBlock = 256;

template <DType kType>
void GenericQuantDot(const float* x, int64_t x_stride, int64_t rows, const void* weights, int64_t w_row_bytes,
                     int64_t count, int64_t k, float* out, int64_t out_stride) {
  const int64_t per_block = DTypeBlockElements(kType), block_bytes = DTypeBlockBytes(kType);
  const uint8_t* w = static_cast<const uint8_t*>(weights);
  float block[kLargestBlock];
  for (int64_t j = 0; j < count; ++j) {
    for (int64_t r = 0; r < rows; ++r) out[r * out_stride + j] = 0.0f;
    for (int64_t b = 0; b < k / per_block; ++b) {
      DequantizeRow(kType, w + j * w_row_bytes + b * block_bytes, per_block, block);
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * x_stride + b * per_block;
        float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // eight lanes so the compiler can vectorize
        for (int64_t i = 0; i < per_block; i += 8) {
          for (int lane = 0; lane < 8; ++lane) partial[lane] += xr[i + lane] * block[i + lane];
        }
        float sum = 0.0f;
        for (float p : partial) sum += p;
        out[r * out_stride + j] += sum;
      }
    }
  }
}

}  // namespace

const QuantDotKernels& GenericQuantDotKernels() {
  static const QuantDotKernels kernels{GenericQuantDot<DType::kQ8_0>, GenericQuantDot<DType::kQ4_0>,
                                       GenericQuantDot<DType::kQ4_K>, GenericQuantDot<DType::kQ6_K>,
                                       GenericQuantDot<DType::kF8_E4M3>, GenericQuantDot<DType::kQ5_0>,
                                       GenericQuantDot<DType::kQ5_1>, GenericQuantDot<DType::kQ4_1>,
                                       GenericQuantDot<DType::kQ5_K>};
  return kernels;
}

}  // namespace kiln::cpu
