// The E2B/E4B MTP drafters' centroid-masked head: of the dense logits, only the tokens of the
// top_k highest-scoring centroids keep theirs (docs/speculative.md). Per row: rank the centroid
// scores, then fill the row with the least kept logit minus 1 and copy the kept ones over it.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backends/cpu/kernel_context.h"

namespace kiln::cpu {

void CentroidMaskKernel(const KernelContext& c) {
  const TensorArg &logits = c.inputs[0], &scores = c.inputs[1], &ordering = c.inputs[2];
  const int64_t vocab = logits.columns, centroids = scores.columns, top_k = c.op->attrs.top_k;
  const int64_t per_centroid = vocab / centroids;
  const int32_t* order = ordering.i32();
  c.pool->ParallelFor(c.output.rows, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> ranked(static_cast<size_t>(centroids));
    for (int64_t r = begin; r < end; ++r) {
      const float* score = scores.f32() + r * centroids;
      const float* in = logits.f32() + r * vocab;
      float* out = c.output.f32() + r * vocab;
      // Highest score first; the lower index wins a tie; NaN ranks as -inf (a strict weak order,
      // as the CUDA kernel ranks).
      auto key = [&](int32_t i) { return std::isnan(score[i]) ? -std::numeric_limits<float>::infinity() : score[i]; };
      std::iota(ranked.begin(), ranked.end(), 0);
      std::partial_sort(ranked.begin(), ranked.begin() + top_k, ranked.end(),
                        [&](int32_t a, int32_t b) { return key(a) > key(b) || (key(a) == key(b) && a < b); });
      // Ids outside the vocabulary (a hostile artifact's) are skipped, never written.
      auto each_kept = [&](auto&& f) {
        for (int64_t k = 0; k < top_k; ++k) {
          const int32_t* ids = order + ranked[static_cast<size_t>(k)] * per_centroid;
          for (int64_t j = 0; j < per_centroid; ++j) {
            if (ids[j] >= 0 && ids[j] < vocab) f(ids[j]);
          }
        }
      };
      float least = std::numeric_limits<float>::infinity();
      each_kept([&](int32_t id) { least = std::min(least, in[id]); });
      std::fill(out, out + vocab, least - 1.0f);
      each_kept([&](int32_t id) { out[id] = in[id]; });
    }
  });
}

}  // namespace kiln::cpu
