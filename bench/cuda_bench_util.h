// What kiln_cuda_bench's parts share: a median, and a CUDA call that must succeed.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace kiln {

inline double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace kiln

// A benchmark cannot go on past a failed CUDA call: it says which and exits.
#define CHECK_CUDA(expr)                                                                    \
  do {                                                                                      \
    if (cudaError_t s_ = (expr); s_ != cudaSuccess) {                                       \
      std::fprintf(stderr, "kiln_cuda_bench: %s: %s\n", #expr, cudaGetErrorString(s_));     \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)
