// Block-format weights on the device: the split layout they are placed in (host and device code;
// the kernels' decoding of it is block_formats.cuh).
//
// Placed layout. A GGUF block interleaves its scales with its quants (Q8_0 is 34 bytes, Q4_0 18,
// Q6_K 210), so its quants are not 16-byte aligned and a 16-byte load would straddle blocks. At
// placement each weight of `rows` rows of `k` elements (B = rows * k / block_elements blocks, in
// row order) is rewritten as sections, each one array over all B blocks, each starting 256-byte
// aligned from the weight's base:
//
//   format   block  section 0           section 1                section 2       section 3
//   Q8_0     32     qs   i8[32]         d f16                    -               -
//   Q4_0     32     qs   u8[16]         d f16                    -               -
//   Q4_K     256    qs   u8[128]        d, dmin f16, scales[12]  -               -
//                                       (16 bytes, as in GGUF)
//   Q6_K     256    ql   u8[128]        qh u8[64]                scales i8[16]   d f16
//   F8_E4M3  128    q    e4m3[128]      scale f32                -               -
//   Q4_1     32     qs   u8[16]         d, m f16                 -               -
//   Q5_0     32     qs   u8[16]         d f16                    qh u8[4]        -
//   Q5_1     32     qs   u8[16]         d, m f16                 qh u8[4]        -
//   Q5_K     256    qs   u8[128]        d, dmin f16, scales[12]  qh u8[32]       -
//
// Every field keeps its GGUF bytes and order inside the block, so the bytes are those of the file
// (plus at most 255 bytes of padding a section). A row's section-0 bytes are contiguous and a
// multiple of 16, so a warp streams them with coalesced 16-byte loads ("units"); the scales, a
// small fraction of the bytes, are read next to them through L1.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "backends/cuda/kernels/kernels.cuh"

namespace kiln::cuda {

inline constexpr int64_t kBlockSectionAlignment = 256;
inline constexpr int kMaxBlockSections = 4;

// A block format's shape: elements and bytes of a GGUF block, and per section the bytes one block
// keeps there and where they sit in the GGUF block.
struct BlockShape {
  int elements = 1;
  int block_bytes = 0;
  int sections = 0;
  int bytes[kMaxBlockSections] = {};
  int source_offset[kMaxBlockSections] = {};
};

__host__ __device__ constexpr BlockShape BlockShapeOf(WeightType type) {
  switch (type) {
    case WeightType::kQ8_0: return {32, 34, 2, {32, 2, 0, 0}, {2, 0, 0, 0}};
    case WeightType::kQ4_0: return {32, 18, 2, {16, 2, 0, 0}, {2, 0, 0, 0}};
    case WeightType::kQ4_K: return {256, 144, 2, {128, 16, 0, 0}, {16, 0, 0, 0}};
    case WeightType::kQ6_K: return {256, 210, 4, {128, 64, 16, 2}, {0, 128, 192, 208}};
    case WeightType::kF8E4M3: return {128, 132, 2, {128, 4, 0, 0}, {4, 0, 0, 0}};
    case WeightType::kQ4_1: return {32, 20, 2, {16, 4, 0, 0}, {4, 0, 0, 0}};
    case WeightType::kQ5_0: return {32, 22, 3, {16, 2, 4, 0}, {6, 0, 2, 0}};
    case WeightType::kQ5_1: return {32, 24, 3, {16, 4, 4, 0}, {8, 0, 4, 0}};
    case WeightType::kQ5_K: return {256, 176, 3, {128, 16, 32, 0}, {48, 0, 16, 0}};
    default: return {};
  }
}

__host__ __device__ constexpr int64_t AlignSection(int64_t bytes) {
  return (bytes + kBlockSectionAlignment - 1) / kBlockSectionAlignment * kBlockSectionAlignment;
}

// Byte offset of section `section` of a placed weight of `blocks` blocks; section == sections
// gives the weight's placed size.
__host__ __device__ inline int64_t BlockSectionOffset(WeightType type, int64_t blocks, int section) {
  const BlockShape shape = BlockShapeOf(type);
  int64_t offset = 0;
  for (int s = 0; s < section; ++s) offset += AlignSection(blocks * shape.bytes[s]);
  return offset;
}

// Bytes a weight of rows x k elements takes in the placed layout.
inline int64_t PlacedBlockBytes(WeightType type, int64_t rows, int64_t k) {
  const BlockShape shape = BlockShapeOf(type);
  return BlockSectionOffset(type, rows * (k / shape.elements), shape.sections);
}

// A placed block weight as the kernels see it: its sections and the blocks of one row.
struct BlockMatrix {
  const uint8_t* section[kMaxBlockSections] = {};
  int64_t blocks_per_row = 0;
};

__host__ __device__ inline BlockMatrix MakeBlockMatrix(WeightType type, const void* base, int64_t rows, int64_t k) {
  const BlockShape shape = BlockShapeOf(type);
  BlockMatrix m;
  m.blocks_per_row = k / shape.elements;
  const int64_t blocks = rows * m.blocks_per_row;
  for (int s = 0; s < shape.sections; ++s) m.section[s] = static_cast<const uint8_t*>(base) + BlockSectionOffset(type, blocks, s);
  return m;
}

// Calls f(std::integral_constant<WeightType, F>{}) for a block format; cudaErrorInvalidValue for
// an element type.
template <typename Fn>
cudaError_t WithBlockFormat(WeightType type, Fn&& f) {
  switch (type) {
    case WeightType::kQ8_0: return f(std::integral_constant<WeightType, WeightType::kQ8_0>{});
    case WeightType::kQ4_0: return f(std::integral_constant<WeightType, WeightType::kQ4_0>{});
    case WeightType::kQ4_K: return f(std::integral_constant<WeightType, WeightType::kQ4_K>{});
    case WeightType::kQ6_K: return f(std::integral_constant<WeightType, WeightType::kQ6_K>{});
    case WeightType::kF8E4M3: return f(std::integral_constant<WeightType, WeightType::kF8E4M3>{});
    case WeightType::kQ5_0: return f(std::integral_constant<WeightType, WeightType::kQ5_0>{});
    case WeightType::kQ5_1: return f(std::integral_constant<WeightType, WeightType::kQ5_1>{});
    case WeightType::kQ4_1: return f(std::integral_constant<WeightType, WeightType::kQ4_1>{});
    case WeightType::kQ5_K: return f(std::integral_constant<WeightType, WeightType::kQ5_K>{});
    case WeightType::kF32:
    case WeightType::kBF16:
    case WeightType::kF16: break;
  }
  return cudaErrorInvalidValue;
}

}  // namespace kiln::cuda
