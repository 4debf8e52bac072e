// y[R, N] = x[R, K] @ w[N, K]^T, fp32 accumulation, w in f32/bf16/f16 or a block format
// (quant_dot.h, rows of whole blocks; with scratch, the int8-activation kernels of quant_int8.h).
// Parallel over output columns (weight rows); each weight row is converted once per group of
// kMaxRows activation rows. Activations are walked in tiles so a tile stays in cache while the
// whole weight streams past it.
#include <algorithm>

#include "backends/cpu/kernel_context.h"

namespace kiln::cpu {

namespace {
constexpr int64_t kRowTile = 64;
}

int64_t Int8ScratchBytes(DType dtype, int64_t rows, int64_t k) {
  return (rows * Int8ActRowBytes(dtype, k) + 63) / 64 * 64;
}

const void* QuantizeActivations(const KernelContext& c, DType dtype, const float* x, int64_t rows, int64_t k, void* scratch) {
  const Int8DotKernels* int8 = c.dot->quant->int8;
  if (scratch == nullptr || int8 == nullptr || int8->For(dtype) == nullptr) return nullptr;
  const QuantizeActFn quantize = int8->QuantizerFor(dtype);
  const int64_t row_bytes = Int8ActRowBytes(dtype, k);
  auto* out = static_cast<uint8_t*>(scratch);
  if (rows == 1) {
    quantize(x, k, 1, k, out);  // a few thousand values: not worth waking the pool
  } else {
    c.pool->ParallelFor(rows, [&](int64_t begin, int64_t end) { quantize(x + begin * k, k, end - begin, k, out + begin * row_bytes); });
  }
  return out;
}

void MatVecInt8(const KernelContext& c, const void* xq, const TensorArg& w, int64_t element_offset, int64_t rows,
                int64_t columns, float* y) {
  const Int8DotFn dot = c.dot->quant->int8->For(w.dtype);
  const uint8_t* base = static_cast<const uint8_t*>(w.data) + DTypeBytes(w.dtype, element_offset);
  const int64_t row_bytes = DTypeBytes(w.dtype, columns);
  c.pool->ParallelFor((rows + kMaxRows - 1) / kMaxRows, [&](int64_t begin, int64_t end) {
    const int64_t n = begin * kMaxRows, count = std::min(end * kMaxRows, rows) - n;
    dot(xq, 1, base + n * row_bytes, row_bytes, count, columns, y + n, 1);
  }, 4);
}

// One activation row (decode): blocks of kMaxRows weight rows through the gemv kernel.
void MatVec(const KernelContext& c, const float* x, const TensorArg& w, int64_t element_offset, int64_t rows,
            int64_t columns, float* y) {
  if (const QuantDotFn quant = c.dot->quant->For(w.dtype)) {
    // element_offset starts a row (a whole number of blocks): bytes are exact.
    const uint8_t* base = static_cast<const uint8_t*>(w.data) + DTypeBytes(w.dtype, element_offset);
    const int64_t row_bytes = DTypeBytes(w.dtype, columns);
    c.pool->ParallelFor((rows + kMaxRows - 1) / kMaxRows, [&](int64_t begin, int64_t end) {
      const int64_t n = begin * kMaxRows, count = std::min(end * kMaxRows, rows) - n;
      quant(x, 0, 1, base + n * row_bytes, row_bytes, count, columns, y + n, 1);
    }, 4);
    return;
  }
  c.pool->ParallelFor((rows + kMaxRows - 1) / kMaxRows, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const int64_t n = block * kMaxRows;
      const int count = static_cast<int>(std::min<int64_t>(kMaxRows, rows - n));
      const int64_t at = element_offset + n * columns;
      switch (w.dtype) {
        case DType::kF32: c.dot->gemv_f32(x, static_cast<const float*>(w.data) + at, columns, columns, count, y + n); break;
        case DType::kBF16: c.dot->gemv_bf16(x, static_cast<const uint16_t*>(w.data) + at, columns, columns, count, y + n); break;
        case DType::kF16: c.dot->gemv_f16(x, static_cast<const uint16_t*>(w.data) + at, columns, columns, count, y + n); break;
        default: break;  // refused by CheckOp
      }
    }
  }, 4);
}

namespace {

// y[rows, columns_out] for weight rows [n, n + count) and activation rows [r0, r0 + rows).
template <typename W, typename RowFn, typename TileFn>
void LinearBlock(const float* x, int64_t r0, int64_t rows, const W* w, int64_t n, int count, int64_t K, int64_t N,
                 float* y, RowFn row_fn, TileFn tile_fn) {
  if (tile_fn != nullptr && count == kMaxRows) {
    for (int64_t r = 0; r < rows; r += 4) {
      tile_fn(x + (r0 + r) * K, K, static_cast<int>(std::min<int64_t>(4, rows - r)), w + n * K, K, K, y + (r0 + r) * N + n, N);
    }
    return;
  }
  for (int64_t r = 0; r < rows; r += kMaxRows) {
    const int block_rows = static_cast<int>(std::min<int64_t>(kMaxRows, rows - r));
    for (int j = 0; j < count; ++j) row_fn(x + (r0 + r) * K, K, block_rows, w + (n + j) * K, K, y + (r0 + r) * N + n + j, N);
  }
}

}  // namespace

void LinearKernel(const KernelContext& c) {
  const TensorArg& x = c.inputs[0];
  const TensorArg& w = c.inputs[1];
  const int64_t K = x.columns, N = w.rows;
  float* y = c.output.f32();
  // Block formats round the activations to int8 once, in the op's scratch (quant_int8.h); rows
  // then share it across every weight row.
  if (const void* xq = QuantizeActivations(c, w.dtype, x.f32(), x.rows, K, c.scratch)) {
    if (x.rows == 1) return MatVecInt8(c, xq, w, 0, N, K, y);
    const Int8DotFn dot = c.dot->quant->int8->For(w.dtype);
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const int64_t row_bytes = DTypeBytes(w.dtype, K), xq_row_bytes = Int8ActRowBytes(w.dtype, K);
    for (int64_t tile = 0; tile < x.rows; tile += kRowTile) {
      const int64_t tile_rows = std::min(kRowTile, x.rows - tile);
      const void* xq_tile = static_cast<const uint8_t*>(xq) + tile * xq_row_bytes;
      c.pool->ParallelFor((N + kMaxRows - 1) / kMaxRows, [&](int64_t begin, int64_t end) {
        const int64_t n = begin * kMaxRows, count = std::min(end * kMaxRows, N) - n;
        dot(xq_tile, tile_rows, base + n * row_bytes, row_bytes, count, K, y + tile * N + n, N);
      }, 4);
    }
    return;
  }
  if (x.rows == 1) return MatVec(c, x.f32(), w, 0, N, K, y);
  if (const QuantDotFn quant = c.dot->quant->For(w.dtype)) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const int64_t row_bytes = DTypeBytes(w.dtype, K);
    for (int64_t tile = 0; tile < x.rows; tile += kRowTile) {
      const int64_t tile_rows = std::min(kRowTile, x.rows - tile);
      c.pool->ParallelFor((N + kMaxRows - 1) / kMaxRows, [&](int64_t begin, int64_t end) {
        const int64_t n = begin * kMaxRows, count = std::min(end * kMaxRows, N) - n;
        quant(x.f32() + tile * K, K, tile_rows, base + n * row_bytes, row_bytes, count, K, y + tile * N + n, N);
      }, 4);
    }
    return;
  }
  for (int64_t tile = 0; tile < x.rows; tile += kRowTile) {
    const int64_t tile_rows = std::min(kRowTile, x.rows - tile);
    c.pool->ParallelFor((N + kMaxRows - 1) / kMaxRows, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block) {
        const int64_t n = block * kMaxRows;
        const int count = static_cast<int>(std::min<int64_t>(kMaxRows, N - n));
        switch (w.dtype) {
          case DType::kF32:
            LinearBlock(x.f32(), tile, tile_rows, static_cast<const float*>(w.data), n, count, K, N, y, c.dot->f32, c.dot->tile_f32);
            break;
          case DType::kBF16:
            LinearBlock(x.f32(), tile, tile_rows, static_cast<const uint16_t*>(w.data), n, count, K, N, y, c.dot->bf16, c.dot->tile_bf16);
            break;
          case DType::kF16:
            LinearBlock(x.f32(), tile, tile_rows, static_cast<const uint16_t*>(w.data), n, count, K, N, y, c.dot->f16, c.dot->tile_f16);
            break;
          default:
            break;  // refused by CheckOp
        }
      }
    }, 4);
  }
}

}  // namespace kiln::cpu
