// Writes GGUF v3 files: metadata of every value type and tensors of any ggml type whose bytes
// the caller has already encoded. For tests today; for a converter or quantizer later.
//
//   GgufWriter writer;
//   writer.Add("general.architecture", GgufWriterValue::String("gemma4"));
//   writer.Add("gemma4.block_count", GgufWriterValue::U32(30));
//   TRY(writer.AddTensor("token_embd.weight", GgmlType::kQ8_0, {2816, 262144}, bytes));
//   TRY(writer.WriteFile("model.gguf"));
//
// The image is built in memory (fine for test files and small models; a streaming writer for
// multi-gigabyte outputs would lay out the same bytes). Tensors are placed in the order added,
// each at the next multiple of the alignment. SetAlignment() also writes general.alignment.
// Keys and tensor names must be unique (kInvalidArgument otherwise); a tensor's byte count must
// match its type and shape (kInvalidArgument).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"
#include "io/gguf_types.h"

namespace kiln {

// A metadata value to write: a scalar, a string, or an array of values of one type (arrays may
// hold arrays).
struct GgufWriterValue {
  GgufValueType type = GgufValueType::kU8;
  std::vector<uint8_t> scalar;  // the little-endian bytes of a fixed-size value
  std::string text;             // kString
  GgufValueType element_type = GgufValueType::kU8;  // kArray
  std::vector<GgufWriterValue> elements;            // kArray

  static GgufWriterValue U8(uint8_t v);
  static GgufWriterValue I8(int8_t v);
  static GgufWriterValue U16(uint16_t v);
  static GgufWriterValue I16(int16_t v);
  static GgufWriterValue U32(uint32_t v);
  static GgufWriterValue I32(int32_t v);
  static GgufWriterValue F32(float v);
  static GgufWriterValue Bool(bool v);
  static GgufWriterValue String(std::string v);
  static GgufWriterValue U64(uint64_t v);
  static GgufWriterValue I64(int64_t v);
  static GgufWriterValue F64(double v);
  // Every element must have type `element_type` (checked when written).
  static GgufWriterValue Array(GgufValueType element_type, std::vector<GgufWriterValue> elements);
  static GgufWriterValue StringArray(const std::vector<std::string>& values);
  static GgufWriterValue I32Array(const std::vector<int32_t>& values);
  static GgufWriterValue F32Array(const std::vector<float>& values);
  // A copy of a value read from a file (io/gguf.h), of the same type.
  static GgufWriterValue From(const GgufValue& value);
};

class GgufWriter {
 public:
  void Add(std::string key, GgufWriterValue value);
  // A power of two; 32 unless set.
  void SetAlignment(uint32_t alignment);
  // `bytes` is copied. `shape` in GGUF order (shape[0] fastest).
  Status AddTensor(std::string name, GgmlType type, std::vector<int64_t> shape,
                   std::span<const uint8_t> bytes);

  // The whole file.
  Result<std::vector<uint8_t>> Encode() const;
  // Encode(), written to `path` + ".tmp" and renamed, so a failure leaves no partial file.
  Status WriteFile(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<std::pair<std::string, GgufWriterValue>> metadata_;
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace kiln
