// What a one-token decode step of one sequence reads from the KV cache, for the benchmarks'
// bandwidth floors.
#pragma once

#include <algorithm>
#include <cstdint>

#include "compiler/program.h"

namespace kiln {

// K and V bytes a one-token step at `position` reads: each attention op reads its window (or
// every position so far) of its cache, in the cache's dtype.
inline int64_t DecodeCacheBytes(const Program& program, int64_t position) {
  const StepFunction& step = *program.FindStep("decode");
  int64_t bytes = 0;
  for (const Op& op : step.graph.ops()) {
    if (op.kind != OpKind::kAttention) continue;
    const CacheLayout& cache = program.caches[static_cast<size_t>(op.attrs.cache_index)];
    const int64_t span = op.attrs.window > 0 ? std::min(op.attrs.window, position + 1) : position + 1;
    bytes += 2 * span * cache.row_bytes();
  }
  return bytes;
}

}  // namespace kiln
