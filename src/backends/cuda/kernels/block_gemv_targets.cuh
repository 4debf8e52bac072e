// The matrices one block-format GEMV launch streams (as Targets in gemv.cu): up to
// kGemvMaxTargets weights that read the same x, each in pieces of `rows_per_block` output rows
// numbered one after another over the targets (thread blocks in the f32-x kernels, one warp's row
// set in the int8-x kernels). Shared by the f32-x kernels (block_gemv.cu)
// and the int8-x kernels (block_gemv_int8.cu).
#pragma once

#include <cstdint>

#include "backends/cuda/kernels/device_math.cuh"
#include "backends/cuda/kernels/gemv.cuh"

namespace kiln::cuda {

struct BlockTargets {
  const void* w[kGemvMaxTargets];
  float* y[kGemvMaxTargets];
  int64_t n[kGemvMaxTargets];
  int64_t end[kGemvMaxTargets];  // pieces of targets 0..i together
  int count;
  // Pieces of the whole launch.
  __host__ __device__ int64_t blocks() const { return count > 0 ? end[count - 1] : 0; }
};

inline BlockTargets MakeBlockTargets(const void* const* w, float* const* y, const int64_t* n, int count, int64_t rows_per_block) {
  BlockTargets targets{};
  int64_t end = 0;
  for (int i = 0; i < count; ++i) {
    targets.w[i] = w[i];
    targets.y[i] = y[i];
    targets.n[i] = n[i];
    targets.end[i] = end += (n[i] + rows_per_block - 1) / rows_per_block;
  }
  targets.count = count;
  return targets;
}

// The target of piece `block`: its weight, output and rows, and the first piece of that target. Constant indices only: a parameter array indexed at run time would be copied to
// local memory.
struct BlockTarget {
  const void* w;
  float* y;
  int64_t n, first;
};

__device__ __forceinline__ BlockTarget TargetOf(const BlockTargets& targets, int64_t block) {
  BlockTarget t{targets.w[0], targets.y[0], targets.n[0], 0};
  if (targets.count > 1 && block >= targets.end[0]) t = {targets.w[1], targets.y[1], targets.n[1], targets.end[0]};
  if (targets.count > 2 && block >= targets.end[1]) t = {targets.w[2], targets.y[2], targets.n[2], targets.end[1]};
  return t;
}

// A warp's outputs: y[r * n + first + p] for its P weight rows and R x rows, from each lane's
// partial sums acc[s][r] over S = P streams (2P with kGeluMul: gelu(gate) * up, the up rows
// after the gate rows). Lane 0 writes rows below n.
template <int P, int S, int R, bool kGeluMul>
__device__ __forceinline__ void StoreWarpRows(const float (&acc)[S][R], int lane, float* y, int64_t n, int64_t first) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int p = 0; p < P; ++p) {
      float value = WarpSum(acc[p][r]);
      if constexpr (kGeluMul) value = GeluTanh(value) * WarpSum(acc[P + p][r]);
      if (lane == 0 && first + p < n) y[r * n + first + p] = value;
    }
  }
}

}  // namespace kiln::cuda
