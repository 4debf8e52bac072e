// KV append and attention over the paged cache.
//
// Each token belongs to a sequence of the step and reads and writes only that sequence's blocks.
// Attention for query position p reads cache positions [max(0, p - window + 1), p] (all of
// [0, p] for full layers): causal, sliding window of exactly `window` tokens including itself.
// Scores are processed in blocks of kAttentionBlock keys with an online softmax (running max and
// sum), so scratch does not grow with the context. GQA: query head h reads KV head h / group.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/kernel_context.h"

namespace kiln::cpu {

void KvAppendKernel(const KernelContext& c) {
  KvCache& cache = c.caches[c.op->attrs.cache_index];
  const TensorArg &k = c.inputs[0], &v = c.inputs[1];
  const int32_t* positions = c.inputs[2].i32();
  const int32_t* sequences = c.inputs[3].i32();
  const int64_t width = cache.num_kv_heads * cache.head_dim;
  for (int64_t t = 0; t < k.rows; ++t) {
    const int64_t row = cache.Row(c.TableOf(sequences[t]), positions[t]);
    std::memcpy(cache.k + row * width, k.f32() + t * width, static_cast<size_t>(width) * 4);
    std::memcpy(cache.v + row * width, v.f32() + t * width, static_cast<size_t>(width) * 4);
  }
}

void AttentionKernel(const KernelContext& c) {
  const KvCache& cache = c.caches[c.op->attrs.cache_index];
  const TensorArg& q = c.inputs[0];
  const int32_t* positions = c.inputs[1].i32();
  const int32_t* sequences = c.inputs[2].i32();
  const int64_t d = c.op->attrs.head_dim, heads = c.op->attrs.num_heads;
  const int64_t group = heads / c.op->attrs.num_kv_heads;
  const int64_t kv_width = cache.num_kv_heads * d;
  const int64_t window = c.op->attrs.window;
  const float scale = c.op->attrs.scale;
  c.pool->ParallelFor(q.rows * heads, [&](int64_t begin, int64_t end) {
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / heads, h = job % heads, kv_head = h / group;
      const float* query = q.f32() + t * q.columns + h * d;
      float* out = c.output.f32() + t * c.output.columns + h * d;
      float* scores = c.scratch + job * kAttentionBlock;
      const int64_t p = positions[t];
      const int32_t* table = c.TableOf(sequences[t]);
      const int64_t first = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
      float running_max = -std::numeric_limits<float>::infinity();
      double running_sum = 0.0;
      std::fill(out, out + d, 0.0f);
      for (int64_t block = first; block <= p; block += kAttentionBlock) {
        const int64_t count = std::min(kAttentionBlock, p + 1 - block);
        float block_max = running_max;
        for (int64_t i = 0; i < count; ++i) {
          const float* key = cache.k + cache.Row(table, block + i) * kv_width + kv_head * d;
          c.dot->f32(key, 0, 1, query, d, &scores[i], 1);
          scores[i] *= scale;
          block_max = std::max(block_max, scores[i]);
        }
        // Rescale what was accumulated under the old maximum.
        const float correction = std::exp(running_max - block_max);
        running_sum *= correction;
        for (int64_t j = 0; j < d; ++j) out[j] *= correction;
        running_max = block_max;
        for (int64_t i = 0; i < count; ++i) {
          const float weight = std::exp(scores[i] - running_max);
          running_sum += weight;
          const float* value = cache.v + cache.Row(table, block + i) * kv_width + kv_head * d;
          for (int64_t j = 0; j < d; ++j) out[j] += weight * value[j];
        }
      }
      const float inv = static_cast<float>(1.0 / running_sum);
      for (int64_t j = 0; j < d; ++j) out[j] *= inv;
    }
  });
}

}  // namespace kiln::cpu
