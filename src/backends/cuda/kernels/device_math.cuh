// Device helpers the kernel files share: reading a weight of any stored type, warp sums, the
// tanh GELU, bf16 -> f32 unpacking, and the KV pool's addressing (KvPages in kernels.cuh).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

__device__ __forceinline__ float LoadWeight(const void* w, WeightType type, int64_t i) {
  switch (type) {
    case WeightType::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(w)[i]);
    case WeightType::kF16: return __half2float(static_cast<const __half*>(w)[i]);
    default: return static_cast<const float*>(w)[i];
  }
}

// The sum over the 32 lanes, in every lane.
template <typename T>
__device__ __forceinline__ T WarpSum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Four consecutive elements of a 32-element block of x quantized to int8 as llama.cpp quantizes
// activations (its Q8_1): d = max|x| / 127 over the block, q = round(x / d). The block's 8 lanes
// (8 consecutive lanes of one warp, starting at a multiple of 8; `group` their mask) call together
// and meet by shuffles.
struct Int8Quad {
  uint32_t packed;  // the 4 q, the first in the low byte
  float d;          // the block's scale
  int sum;          // this lane's 4 q summed
};
__device__ __forceinline__ unsigned BlockLaneGroup() { return 0xFFu << (threadIdx.x & 24); }
__device__ __forceinline__ Int8Quad QuantizeInt8Quad(const float4& v, unsigned group) {
  float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
  for (int mask = 1; mask < 8; mask <<= 1) amax = fmaxf(amax, __shfl_xor_sync(group, amax, mask));
  const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
  const int q0 = __float2int_rn(v.x * inverse), q1 = __float2int_rn(v.y * inverse);
  const int q2 = __float2int_rn(v.z * inverse), q3 = __float2int_rn(v.w * inverse);
  const uint32_t packed = (static_cast<uint32_t>(q0) & 0xFFu) | ((static_cast<uint32_t>(q1) & 0xFFu) << 8) |
                          ((static_cast<uint32_t>(q2) & 0xFFu) << 16) | (static_cast<uint32_t>(q3) << 24);
  return {packed, amax / 127.0f, q0 + q1 + q2 + q3};
}

// gelu_pytorch_tanh, as docs/gemma4.md defines it.
__device__ __forceinline__ float GeluTanh(float g) {
  return 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
}

// Two bf16 packed in a 32-bit word (the lower one first in memory) as floats: bf16 -> f32 is a
// 16-bit shift.
__device__ __forceinline__ void UnpackBf16Pair(uint32_t word, float& lo, float& hi) {
  lo = __uint_as_float(word << 16);
  hi = __uint_as_float(word & 0xffff0000u);
}

// This layer's block ids of `sequence` (its block table row from this group's first entry on).
__device__ __forceinline__ const int32_t* LayerTable(const KvPages& pages, int32_t sequence) {
  return pages.block_tables + sequence * pages.table_stride + pages.table_offset;
}

__device__ __forceinline__ int64_t SlotOf(const KvPages& pages, int64_t position) {
  return pages.ring ? position % pages.capacity : position;
}

// The pool row of slot `slot` of the sequence whose layer table is `table`.
__device__ __forceinline__ int64_t PoolRow(const KvPages& pages, const int32_t* table, int64_t slot) {
  const int32_t block = static_cast<int32_t>(slot / pages.block_size);
  return static_cast<int64_t>(table[block]) * pages.block_size + (slot - static_cast<int64_t>(block) * pages.block_size);
}

}  // namespace kiln::cuda
