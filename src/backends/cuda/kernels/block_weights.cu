#include "backends/cuda/kernels/block_weights.cuh"

#include <algorithm>

#include "backends/cuda/kernels/block_formats.cuh"

namespace kiln::cuda {

namespace {

unsigned Blocks(int64_t count, int threads) {
  return static_cast<unsigned>(std::min<int64_t>((count + threads - 1) / threads, 65535 * 16));
}

// Section s of blocks [0, blocks) of `raw` (GGUF blocks) into the section at `out`.
__global__ void RepackSectionKernel(const uint8_t* __restrict__ raw, int block_bytes, int source_offset, int bytes, int64_t blocks,
                                    uint8_t* __restrict__ out) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < blocks * bytes;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t block = i / bytes;
    out[i] = raw[block * block_bytes + source_offset + (i - block * bytes)];
  }
}

// splitmix64 of (seed, index).
__device__ uint64_t Mix(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__device__ uint32_t F16Bits(float value) { return __half_as_ushort(__float2half(value)); }

// One 4-byte word (2 bytes for the f16 scale sections) of section `s` at byte `at` of its block.
// Quants are random bytes; scales small and positive, in [0.5, 1) x the format's unit, so that
// values reach about `spread`.
__device__ uint32_t RandomField(WeightType type, int s, int at, uint64_t z, float spread) {
  const float unit = 0.5f + 0.5f * static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
  const uint32_t bits = static_cast<uint32_t>(z);
  switch (type) {
    case WeightType::kQ8_0: return s == 0 ? bits : F16Bits(unit * spread / 127.0f);
    case WeightType::kQ4_0: return s == 0 ? bits : F16Bits(unit * spread / 8.0f);
    case WeightType::kQ4_K: {
      if (s == 0 || at != 0) return bits;  // quants, or the sub-block scales and minimums
      // Mean sc and m alike: dmin = 7.5 d centres d sc q - dmin m (q in 0..15) near zero.
      const float d = unit * spread / 472.0f;
      return F16Bits(d) | (F16Bits(7.5f * d) << 16);
    }
    case WeightType::kQ6_K: return s < 3 ? bits : F16Bits(unit * spread / 2048.0f);
    case WeightType::kQ4_1:
      // m = -7.5 d centres d q + m (q in 0..15) near zero.
      return s == 0 ? bits : F16Bits(unit * spread / 8.0f) | (F16Bits(-7.5f * unit * spread / 8.0f) << 16);
    case WeightType::kQ5_0: return s != 1 ? bits : F16Bits(unit * spread / 16.0f);
    case WeightType::kQ5_1: return s != 1 ? bits : F16Bits(unit * spread / 16.0f) | (F16Bits(-15.5f * unit * spread / 16.0f) << 16);
    case WeightType::kQ5_K: {
      if (s != 1 || at != 0) return bits;
      // As Q4_K with q in 0..31: dmin = 15.5 d centres d sc q - dmin m near zero.
      const float d = unit * spread / 976.0f;
      return F16Bits(d) | (F16Bits(15.5f * d) << 16);
    }
    case WeightType::kF8E4M3:
      // Exponents below 8 only: magnitudes up to 1.875, never the NaN codes (exponent 15).
      return s == 0 ? bits & 0xBFBFBFBFu : __float_as_uint(unit * spread / 2.0f);
    case WeightType::kF32:
    case WeightType::kBF16:
    case WeightType::kF16: break;
  }
  return 0;
}

__global__ void RandomSectionKernel(uint8_t* __restrict__ out, WeightType type, int s, int bytes, int64_t blocks, uint64_t seed, float spread) {
  const int field = bytes % 4 == 0 ? 4 : 2;
  const int64_t count = blocks * bytes / field;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int at = static_cast<int>((i * field) % bytes);
    const uint32_t value = RandomField(type, s, at, Mix(seed, static_cast<uint64_t>(i)), spread);
    if (field == 4) {
      reinterpret_cast<uint32_t*>(out)[i] = value;
    } else {
      reinterpret_cast<uint16_t*>(out)[i] = static_cast<uint16_t>(value);
    }
  }
}

// One thread per unit of the rows dequantized.
template <WeightType F>
__global__ void DequantizeKernel(BlockMatrix m, int64_t k, int64_t first_row, int64_t rows, __nv_bfloat16* __restrict__ out) {
  using Format = BlockFormat<F>;
  const int64_t units = k / Format::kUnitElements;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * units; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / units, unit = i - r * units;
    const typename Format::Unit u = Format::Load(m, first_row + r, unit);
#pragma unroll
    for (int group = 0; group < Format::kGroups; ++group) {
      BlockGroup g;
      Format::Expand(u, unit, group, g);
      uint32_t packed[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const __nv_bfloat162 pair = __floats2bfloat162_rn(ExactWeight(g, 2 * j), ExactWeight(g, 2 * j + 1));
        packed[j] = static_cast<uint32_t>(__bfloat16_as_ushort(pair.x)) | (static_cast<uint32_t>(__bfloat16_as_ushort(pair.y)) << 16);
      }
      // 16 bf16 = two 16-byte stores (k and the group offsets are multiples of 16).
      uint4* target = reinterpret_cast<uint4*>(out + r * k + Format::Offset(unit, group));
      target[0] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
      target[1] = make_uint4(packed[4], packed[5], packed[6], packed[7]);
    }
  }
}

// One block per token, its threads over the row's units.
template <WeightType F>
__global__ void EmbedBlocksKernel(const int32_t* __restrict__ ids, BlockMatrix m, int64_t table_rows, int64_t width, float scale,
                                  float* __restrict__ out) {
  using Format = BlockFormat<F>;
  const int64_t t = blockIdx.x;
  const int64_t row = (ids[t] >= 0 && ids[t] < table_rows) ? ids[t] : 0;
  const int64_t units = width / Format::kUnitElements;
  for (int64_t unit = threadIdx.x; unit < units; unit += blockDim.x) {
    const typename Format::Unit u = Format::Load(m, row, unit);
#pragma unroll
    for (int group = 0; group < Format::kGroups; ++group) {
      BlockGroup g;
      Format::Expand(u, unit, group, g);
      float4* target = reinterpret_cast<float4*>(out + t * width + Format::Offset(unit, group));
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        target[i] = make_float4(__fmul_rn(ExactWeight(g, 4 * i), scale), __fmul_rn(ExactWeight(g, 4 * i + 1), scale),
                                __fmul_rn(ExactWeight(g, 4 * i + 2), scale), __fmul_rn(ExactWeight(g, 4 * i + 3), scale));
      }
    }
  }
}

}  // namespace

cudaError_t LaunchRepackBlocks(const void* raw, WeightType type, int64_t first_row, int64_t rows, int64_t total_rows, int64_t k,
                               void* placed, cudaStream_t stream) {
  const BlockShape shape = BlockShapeOf(type);
  if (!IsBlockWeight(type) || k % shape.elements != 0 || first_row < 0 || first_row + rows > total_rows) return cudaErrorInvalidValue;
  const int64_t per_row = k / shape.elements, blocks = rows * per_row;
  if (blocks == 0) return cudaSuccess;
  const BlockMatrix m = MakeBlockMatrix(type, placed, total_rows, k);
  for (int s = 0; s < shape.sections; ++s) {
    uint8_t* out = const_cast<uint8_t*>(m.section[s]) + first_row * per_row * shape.bytes[s];
    RepackSectionKernel<<<Blocks(blocks * shape.bytes[s], 256), 256, 0, stream>>>(static_cast<const uint8_t*>(raw), shape.block_bytes,
                                                                                   shape.source_offset[s], shape.bytes[s], blocks, out);
  }
  return cudaGetLastError();
}

cudaError_t LaunchRandomBlocks(void* placed, WeightType type, int64_t rows, int64_t k, uint64_t seed, float spread, cudaStream_t stream) {
  const BlockShape shape = BlockShapeOf(type);
  if (!IsBlockWeight(type) || k % shape.elements != 0) return cudaErrorInvalidValue;
  const int64_t blocks = rows * (k / shape.elements);
  if (blocks == 0) return cudaSuccess;
  const BlockMatrix m = MakeBlockMatrix(type, placed, rows, k);
  for (int s = 0; s < shape.sections; ++s) {
    const int64_t fields = blocks * shape.bytes[s] / (shape.bytes[s] % 4 == 0 ? 4 : 2);
    RandomSectionKernel<<<Blocks(fields, 256), 256, 0, stream>>>(const_cast<uint8_t*>(m.section[s]), type, s, shape.bytes[s], blocks,
                                                                  seed * kMaxBlockSections + static_cast<uint64_t>(s), spread);
  }
  return cudaGetLastError();
}

cudaError_t LaunchDequantizeBlocks(const void* placed, WeightType type, int64_t total_rows, int64_t k, int64_t first_row, int64_t rows,
                                   void* out_bf16, cudaStream_t stream) {
  if (first_row < 0 || first_row + rows > total_rows) return cudaErrorInvalidValue;
  if (rows == 0) return IsBlockWeight(type) ? cudaSuccess : cudaErrorInvalidValue;
  return WithBlockFormat(type, [&](auto format) {
    constexpr WeightType F = decltype(format)::value;
    if (k % BlockShapeOf(F).elements != 0) return cudaErrorInvalidValue;
    const int64_t units = rows * (k / BlockFormat<F>::kUnitElements);
    DequantizeKernel<F><<<Blocks(units, 256), 256, 0, stream>>>(MakeBlockMatrix(F, placed, total_rows, k), k, first_row, rows,
                                                               static_cast<__nv_bfloat16*>(out_bf16));
    return cudaGetLastError();
  });
}

cudaError_t LaunchEmbedBlocks(const int32_t* ids, const void* table, WeightType type, int64_t table_rows, int64_t tokens, int64_t width,
                              float scale, float* out, cudaStream_t stream) {
  if (tokens == 0) return IsBlockWeight(type) ? cudaSuccess : cudaErrorInvalidValue;
  return WithBlockFormat(type, [&](auto format) {
    constexpr WeightType F = decltype(format)::value;
    if (width % BlockShapeOf(F).elements != 0) return cudaErrorInvalidValue;
    EmbedBlocksKernel<F><<<static_cast<unsigned>(tokens), 128, 0, stream>>>(ids, MakeBlockMatrix(F, table, table_rows, width), table_rows,
                                                                            width, scale, out);
    return cudaGetLastError();
  });
}

}  // namespace kiln::cuda
