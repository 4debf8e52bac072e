// y[R, N] = x[R, K] @ w[N, K]^T, fp32 accumulation, w in f32/bf16/f16.
// Parallel over output columns (weight rows); each weight row is converted once per group of
// kMaxRows activation rows. Activations are walked in tiles so a tile stays in cache while the
// whole weight streams past it.
#include <algorithm>

#include "backends/cpu/kernel_context.h"

namespace kiln::cpu {

namespace {
constexpr int64_t kRowTile = 64;
}

// One activation row (decode): blocks of kMaxRows weight rows through the gemv kernel.
void MatVec(const KernelContext& c, const float* x, const TensorArg& w, int64_t element_offset, int64_t rows,
            int64_t columns, float* y) {
  c.pool->ParallelFor((rows + kMaxRows - 1) / kMaxRows, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const int64_t n = block * kMaxRows;
      const int count = static_cast<int>(std::min<int64_t>(kMaxRows, rows - n));
      const int64_t at = element_offset + n * columns;
      switch (w.dtype) {
        case DType::kF32: c.dot->gemv_f32(x, static_cast<const float*>(w.data) + at, columns, columns, count, y + n); break;
        case DType::kBF16: c.dot->gemv_bf16(x, static_cast<const uint16_t*>(w.data) + at, columns, columns, count, y + n); break;
        case DType::kF16: c.dot->gemv_f16(x, static_cast<const uint16_t*>(w.data) + at, columns, columns, count, y + n); break;
        case DType::kI32: break;  // refused by CheckOp
      }
    }
  }, 4);
}

void LinearKernel(const KernelContext& c) {
  const TensorArg& x = c.inputs[0];
  const TensorArg& w = c.inputs[1];
  const int64_t K = x.columns, N = w.rows;
  float* y = c.output.f32();
  if (x.rows == 1) return MatVec(c, x.f32(), w, 0, N, K, y);
  for (int64_t tile = 0; tile < x.rows; tile += kRowTile) {
    const int64_t tile_rows = std::min(kRowTile, x.rows - tile);
    c.pool->ParallelFor(N, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        for (int64_t r = 0; r < tile_rows; r += kMaxRows) {
          const int rows = static_cast<int>(std::min<int64_t>(kMaxRows, tile_rows - r));
          const float* xr = x.f32() + (tile + r) * K;
          float* out = y + (tile + r) * N + n;
          switch (w.dtype) {
            case DType::kF32: c.dot->f32(xr, K, rows, static_cast<const float*>(w.data) + n * K, K, out, N); break;
            case DType::kBF16: c.dot->bf16(xr, K, rows, static_cast<const uint16_t*>(w.data) + n * K, K, out, N); break;
            case DType::kF16: c.dot->f16(xr, K, rows, static_cast<const uint16_t*>(w.data) + n * K, K, out, N); break;
            case DType::kI32: break;  // refused by CheckOp
          }
        }
      }
    }, 16);
  }
}

}  // namespace kiln::cpu
