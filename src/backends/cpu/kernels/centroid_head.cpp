// The E2B/E4B MTP drafters' sparse head (docs/speculative.md): rank the centroid scores, compute
// the logits x . w[id] of only the tokens of the top_k best centroids (top_k * V / C head rows),
// fill the row with the least of them minus 1 and write them over it. Each logit is the dot
// product the linear kernel would give that head row (the same kernels, one row at a time; block
// formats through the int8 activations when the CPU has them).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backends/cpu/kernel_context.h"

namespace kiln::cpu {

int64_t CentroidHeadScratchBytes(DType head_dtype, int64_t hidden, int64_t kept) {
  return Int8ScratchBytes(head_dtype, 1, hidden) + (kept * 4 + 63) / 64 * 64;
}

void CentroidHeadKernel(const KernelContext& c) {
  const TensorArg &x = c.inputs[0], &head = c.inputs[1], &scores = c.inputs[2], &ordering = c.inputs[3];
  const int64_t hidden = x.columns, vocab = c.output.columns, centroids = scores.columns, top_k = c.op->attrs.top_k;
  const int64_t per_centroid = vocab / centroids, kept = top_k * per_centroid;
  const int32_t* order = ordering.i32();
  auto* scratch = reinterpret_cast<uint8_t*>(c.scratch);
  float* values = reinterpret_cast<float*>(scratch + Int8ScratchBytes(head.dtype, 1, hidden));
  const uint8_t* rows = static_cast<const uint8_t*>(head.data);
  const int64_t row_bytes = DTypeBytes(head.dtype, hidden);
  std::vector<int32_t> ranked(static_cast<size_t>(centroids));
  std::vector<int32_t> ids(static_cast<size_t>(kept));
  for (int64_t r = 0; r < c.output.rows; ++r) {
    const float* score = scores.f32() + r * centroids;
    const float* xr = x.f32() + r * hidden;
    float* out = c.output.f32() + r * vocab;
    // Highest score first; the lower index wins a tie; NaN ranks as -inf (a strict weak order,
    // as the CUDA kernel ranks).
    auto key = [&](int32_t i) { return std::isnan(score[i]) ? -std::numeric_limits<float>::infinity() : score[i]; };
    std::iota(ranked.begin(), ranked.end(), 0);
    std::partial_sort(ranked.begin(), ranked.begin() + top_k, ranked.end(),
                      [&](int32_t a, int32_t b) { return key(a) > key(b) || (key(a) == key(b) && a < b); });
    for (int64_t k = 0; k < top_k; ++k) {
      std::copy_n(order + ranked[static_cast<size_t>(k)] * per_centroid, per_centroid, ids.begin() + k * per_centroid);
    }
    // Ids outside the vocabulary (a hostile artifact's) are skipped, never read or written.
    auto valid = [&](int32_t id) { return id >= 0 && id < vocab; };
    const void* xq = QuantizeActivations(c, head.dtype, xr, 1, hidden, c.scratch);
    const Int8DotFn int8 = xq != nullptr ? c.dot->quant->int8->For(head.dtype) : nullptr;
    const QuantDotFn quant = c.dot->quant->For(head.dtype);
    c.pool->ParallelFor(kept, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int32_t id = ids[static_cast<size_t>(i)];
        if (!valid(id)) continue;
        const uint8_t* w = rows + id * row_bytes;
        float* y = values + i;
        if (int8 != nullptr) {
          int8(xq, 1, w, row_bytes, 1, hidden, y, 1);
        } else if (quant != nullptr) {
          quant(xr, 0, 1, w, row_bytes, 1, hidden, y, 1);
        } else if (head.dtype == DType::kF32) {
          c.dot->gemv_f32(xr, reinterpret_cast<const float*>(w), hidden, hidden, 1, y);
        } else if (head.dtype == DType::kBF16) {
          c.dot->gemv_bf16(xr, reinterpret_cast<const uint16_t*>(w), hidden, hidden, 1, y);
        } else {
          c.dot->gemv_f16(xr, reinterpret_cast<const uint16_t*>(w), hidden, hidden, 1, y);
        }
      }
    }, 64);
    float least = std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < kept; ++i) {
      if (valid(ids[static_cast<size_t>(i)])) least = std::min(least, values[i]);
    }
    std::fill(out, out + vocab, least - 1.0f);
    for (int64_t i = 0; i < kept; ++i) {
      if (valid(ids[static_cast<size_t>(i)])) out[ids[static_cast<size_t>(i)]] = values[i];
    }
  }
}

}  // namespace kiln::cpu
