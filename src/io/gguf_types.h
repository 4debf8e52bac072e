// The two type vocabularies of a GGUF file: metadata value types (gguf.h in ggml) and tensor
// element types (enum ggml_type in ggml.h).
//
// ggml types are identified by their number in the file, which is fixed forever: ids that ggml
// removed (4, 5, 31-33, 36-38) are never reused, so a table indexed by id is the whole truth.
// A block-quantized type packs `block_elements` consecutive values of the fastest axis (ne[0])
// into `block_bytes` bytes; plain types have block_elements = 1. A tensor of N elements then
// takes N / block_elements * block_bytes bytes, and its ne[0] must be a multiple of
// block_elements.
//
//   const GgmlTypeInfo* info = FindGgmlType(12);   // Q4_K: {"q4_K", 256, 144}
//   if (info == nullptr) ...                        // an id ggml does not define (or not yet)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/dtype.h"

namespace kiln {

// Metadata value types, numbered as in the file.
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// "u32", "string", "array", ...; "type 77" for an id outside the enum.
std::string GgufValueTypeName(uint32_t type);
// Bytes of one value of a fixed-size type; 0 for string, array and unknown ids.
uint64_t GgufScalarBytes(uint32_t type);
bool IsGgufIntegerType(GgufValueType type);

// Tensor element types, numbered as in ggml.h. Only the ids kiln has names for are listed;
// FindGgmlType knows the block geometry of every id ggml defined up to kNvfp4.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIq2_Xxs = 16,
  kIq2_Xs = 17,
  kIq3_Xxs = 18,
  kIq1_S = 19,
  kIq4_Nl = 20,
  kIq3_S = 21,
  kIq2_S = 22,
  kIq4_Xs = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIq1_M = 29,
  kBF16 = 30,
  kTq1_0 = 34,
  kTq2_0 = 35,
  kMxfp4 = 39,
  kNvfp4 = 40,
};

struct GgmlTypeInfo {
  uint32_t id;
  const char* name;        // ggml's type_name ("q4_0", "bf16")
  int64_t block_elements;  // values per block (1 for plain types)
  int64_t block_bytes;     // bytes per block
};

// nullptr for ids ggml never defined, removed, or defined after kiln's table was written.
const GgmlTypeInfo* FindGgmlType(uint32_t id);
// "q4_K", or "type 41" for an unknown id.
std::string GgmlTypeName(uint32_t id);
// The kiln element type of a plain ggml type (f32, f16, bf16, i32); nullopt for block-quantized
// and other types, which a loader must convert or refuse by name.
std::optional<DType> DTypeFromGgml(GgmlType type);

}  // namespace kiln
