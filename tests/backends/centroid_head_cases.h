// Inputs and the definition of the sparse centroid head (OpKind::kCentroidHead,
// docs/speculative.md), shared by its CPU and CUDA kernel tests: rank the centroids by score (NaN
// lowest, the lower index first on a tie), compute x . w[id] for the tokens of the best top_k,
// give every other token the least of those minus 1. Ids outside the vocabulary are skipped.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/quant.h"

namespace kiln::centroid_head_test {

struct Case {
  std::string name;
  int64_t rows, vocab, centroids, top_k, hidden;
  DType dtype;
  std::vector<float> x, scores;
  std::vector<uint8_t> head;      // [vocab, hidden] stored as dtype (block formats: GGUF blocks)
  std::vector<float> dequantized;  // the head as the kernels read it
  std::vector<int32_t> ordering;
};

inline Case RandomCase(std::string name, int64_t rows, int64_t vocab, int64_t centroids, int64_t top_k, int64_t hidden, DType dtype,
                       uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Case c{std::move(name), rows, vocab, centroids, top_k, hidden, dtype, {}, {}, {}, {}, {}};
  c.x.resize(static_cast<size_t>(rows * hidden));
  for (float& v : c.x) v = normal(rng);
  c.scores.resize(static_cast<size_t>(rows * centroids));
  for (float& v : c.scores) v = 3.0f * normal(rng);
  std::vector<float> w(static_cast<size_t>(vocab * hidden));
  for (float& v : w) v = 0.1f * normal(rng);
  const int64_t row_bytes = DTypeBytes(dtype, hidden);
  c.head.resize(static_cast<size_t>(vocab * row_bytes));
  c.dequantized.resize(w.size());
  for (int64_t v = 0; v < vocab; ++v) {
    const float* src = w.data() + v * hidden;
    uint8_t* dst = c.head.data() + v * row_bytes;
    float* back = c.dequantized.data() + v * hidden;
    if (dtype == DType::kF32) {
      std::memcpy(dst, src, static_cast<size_t>(row_bytes));
    } else if (dtype == DType::kBF16) {
      for (int64_t i = 0; i < hidden; ++i) reinterpret_cast<uint16_t*>(dst)[i] = F32ToBf16(src[i]);
    } else {
      QuantizeRow(dtype, src, hidden, dst);
    }
    if (dtype == DType::kBF16) {
      for (int64_t i = 0; i < hidden; ++i) back[i] = Bf16ToF32(reinterpret_cast<const uint16_t*>(dst)[i]);
    } else {
      DequantizeRow(dtype, dst, hidden, back);
    }
  }
  c.ordering.resize(static_cast<size_t>(vocab));
  std::iota(c.ordering.begin(), c.ordering.end(), 0);
  std::shuffle(c.ordering.begin(), c.ordering.end(), rng);
  return c;
}

// Scores tied across centroids (at the top and at the last place kept), NaN scores, and ids
// outside the vocabulary in the ordering.
inline Case AwkwardCase(DType dtype) {
  Case c = RandomCase(std::string("awkward ") + DTypeName(dtype), 3, 512, 16, 4, 256, dtype, 9);
  for (int64_t r = 0; r < 3; ++r) {
    float* s = c.scores.data() + r * 16;
    s[2] = s[5] = s[11] = 10.0f;
    s[7] = s[13] = 4.0f;
    s[0] = std::numeric_limits<float>::quiet_NaN();
  }
  c.ordering[2 * 32 + 3] = -1;
  c.ordering[5 * 32 + 7] = 512;
  c.ordering[11 * 32] = 1 << 30;
  return c;
}

// The cases every kernel runs: the E2B/E4B drafters' ranking shapes (262,144 tokens, 2,048
// centroids, the best 32; a narrow hidden size keeps the head small), several rows, and every
// head type at a width of whole K-quant blocks.
inline std::vector<Case> Cases(const std::vector<DType>& block_types) {
  std::vector<Case> cases;
  cases.push_back(RandomCase("e2b ranking", 2, 262144, 2048, 32, 32, DType::kF32, 1));
  for (DType dtype : {DType::kF32, DType::kBF16}) cases.push_back(RandomCase(std::string("rows ") + DTypeName(dtype), 5, 512, 16, 4, 256, dtype, 3));
  for (DType dtype : block_types) cases.push_back(RandomCase(std::string("rows ") + DTypeName(dtype), 2, 1024, 32, 3, 256, dtype, 4));
  for (DType dtype : {DType::kF32, DType::kQ8_0}) cases.push_back(AwkwardCase(dtype));
  return cases;
}

// Holds `got` (rows x vocab) to the definition: the kept tokens are exactly the reference's, each
// within `tolerance` x sum|x_i w_i| of the exact dot product (the kernels' summation order and,
// for int8 activations, their rounding), and every other entry is exactly the least kept minus 1.
inline void ExpectMatchesDefinition(const Case& c, const std::vector<float>& got, double tolerance) {
  ASSERT_EQ(got.size(), static_cast<size_t>(c.rows * c.vocab));
  const int64_t per = c.vocab / c.centroids;
  for (int64_t r = 0; r < c.rows; ++r) {
    std::vector<int64_t> rank(static_cast<size_t>(c.centroids));
    std::iota(rank.begin(), rank.end(), 0);
    auto key = [&](int64_t i) {
      const float s = c.scores[static_cast<size_t>(r * c.centroids + i)];
      return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s;
    };
    std::stable_sort(rank.begin(), rank.end(), [&](int64_t a, int64_t b) { return key(a) > key(b); });
    std::vector<bool> kept(static_cast<size_t>(c.vocab), false);
    const float* y = got.data() + r * c.vocab;
    const float* x = c.x.data() + r * c.hidden;
    float least = std::numeric_limits<float>::infinity();
    int64_t far = 0;
    for (int64_t k = 0; k < c.top_k; ++k) {
      for (int64_t j = 0; j < per; ++j) {
        const int32_t id = c.ordering[static_cast<size_t>(rank[static_cast<size_t>(k)] * per + j)];
        if (id < 0 || id >= c.vocab) continue;
        kept[static_cast<size_t>(id)] = true;
        double exact = 0, magnitude = 1e-6;
        for (int64_t i = 0; i < c.hidden; ++i) {
          const double term = static_cast<double>(x[i]) * c.dequantized[static_cast<size_t>(id * c.hidden + i)];
          exact += term;
          magnitude += std::fabs(term);
        }
        far += std::fabs(y[id] - exact) > tolerance * magnitude;
        if (far == 1 && std::fabs(y[id] - exact) > tolerance * magnitude) {
          ADD_FAILURE() << c.name << " row " << r << " token " << id << ": " << y[id] << " vs " << exact << " (bound " << tolerance * magnitude << ")";
        }
        least = std::min(least, y[id]);
      }
    }
    EXPECT_EQ(far, 0) << c.name << " row " << r << ": kept logits off the dot product";
    int64_t wrong = 0;
    for (int64_t v = 0; v < c.vocab; ++v) wrong += !kept[static_cast<size_t>(v)] && y[v] != least - 1.0f;
    EXPECT_EQ(wrong, 0) << c.name << " row " << r << ": entries outside the kept centroids other than the least kept - 1 = " << least - 1.0f;
  }
}

}  // namespace kiln::centroid_head_test
