// GGUF files (llama.cpp's model format, versions 2 and 3), memory-mapped and validated.
//
//   TRY_ASSIGN(GgufFile file, GgufFile::Open("gemma-4-e2b-q4_0.gguf"));
//   TRY_ASSIGN(std::string arch, file.metadata().GetString("general.architecture"));
//   TRY_ASSIGN(uint32_t layers, file.metadata().GetU32(arch + ".block_count"));
//   TRY_ASSIGN(const GgufTensor* embed, file.GetTensor("token_embd.weight"));
//   // embed->type == GgmlType::kQ6_K, embed->shape == {hidden, vocab}, embed->bytes()
//
// For split models (model-00001-of-00003.gguf ...) use GgufModel (io/gguf_model.h), which
// opens every shard and presents one tensor table.
//
// Layout (little-endian): "GGUF", u32 version, i64 tensor count, i64 key count, the key/value
// pairs (key string, u32 value type, value), the tensor infos (name string, u32 n_dims,
// i64 ne[n_dims], u32 ggml type, u64 offset), padding to the alignment, then the data section.
// A string is a u64 length and that many bytes (no NUL); an array is a u32 element type, a u64
// count and the elements.
//
// Open() validates the whole file before anything is handed out, because model files are
// untrusted input. Every count, length and offset is checked against the bytes that remain,
// with overflow-safe arithmetic, so a hostile file costs at most a pass over its own bytes:
//   - magic "GGUF"; version 2 or 3 (v1 and big-endian files are refused by name);
//   - every metadata value of the 13 types; arrays may nest at most kMaxArrayDepth deep;
//   - duplicate keys and duplicate tensor names are refused;
//   - general.alignment (u32, default 32) is a power of two no larger than kMaxAlignment;
//   - each tensor has 1..4 dims, each >= 0, ne[0] a multiple of its type's block size, a ggml
//     type kiln knows (io/gguf_types.h), and exactly elements / block * block_bytes bytes at an
//     aligned offset inside the data section; no two tensors share a byte.
// Tensor data is not read: a multi-gigabyte file costs its metadata pages until a tensor's
// bytes are touched.
//
// Errors: kNotFound / kIo from opening the file; kMalformed for a bad file (the message names
// the file, the byte offset, what was expected and what was found); kVersionMismatch for GGUF
// versions other than 2 and 3; kUnsupported for big-endian files and ggml types kiln does not
// know. Metadata getters: kNotFound for a missing key, kMalformed for a value of the wrong type
// or out of the asked type's range.
//
// Lifetime: GgufValue, GgufTensor::data and the string_views returned by the array getters
// point into the file's mapping (or the image given to ParseImage) and live as long as the
// GgufFile. A GgufFile is immutable after Open and may be read from several threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "io/gguf_types.h"

namespace kiln {

// One metadata value, a view into the validated file bytes.
class GgufValue {
 public:
  GgufValueType type() const { return type_; }
  // Arrays: the type of the elements and their number.
  GgufValueType element_type() const { return element_type_; }
  uint64_t count() const { return count_; }
  // Byte offset in the file where the value's payload starts (for messages).
  uint64_t offset() const { return offset_; }

  // Scalar conversions; nullopt when the value is of another kind or does not fit.
  // Integers convert between widths when the value fits; bool is not an integer here.
  std::optional<int64_t> AsInt64() const;
  std::optional<uint64_t> AsUint64() const;
  // f32 or f64 (converted).
  std::optional<double> AsDouble() const;
  std::optional<bool> AsBool() const;
  std::optional<std::string_view> AsString() const;
  // Arrays: the elements in order (each a GgufValue of element_type()). Empty for non-arrays.
  std::vector<GgufValue> Elements() const;
  // Arrays: calls visit(const GgufValue&) on each element in order, without collecting them
  // (a 262,144-token vocabulary is one pass over its bytes).
  template <typename Visit>
  void ForEachElement(Visit&& visit) const {
    if (type_ != GgufValueType::kArray) return;
    uint64_t walked = 0;
    for (uint64_t i = 0; i < count_; ++i) {
      uint64_t element_bytes = 0;
      visit(ViewAt(element_type_, data_ + walked, offset_ + walked, &element_bytes));
      walked += element_bytes;
    }
  }

 private:
  friend class GgufParser;
  // The value of `type` whose bytes (for a string or array: its length/header) start at
  // `at`, already validated; sets *consumed_bytes to the bytes it spans.
  static GgufValue ViewAt(GgufValueType type, const uint8_t* at, uint64_t offset,
                          uint64_t* consumed_bytes);
  template <typename T>
  T Load() const;

  GgufValueType type_ = GgufValueType::kU8;
  GgufValueType element_type_ = GgufValueType::kU8;
  uint64_t count_ = 0;
  const uint8_t* data_ = nullptr;  // payload: scalar bytes, string bytes, or first element
  uint64_t size_bytes_ = 0;        // payload bytes
  uint64_t offset_ = 0;
};

// The key/value pairs of one file, in file order, with typed getters for a model loader.
class GgufMetadata {
 public:
  struct Entry {
    std::string key;
    GgufValue value;
  };

  const std::vector<Entry>& entries() const { return entries_; }
  // nullptr when the key is absent.
  const GgufValue* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }

  // Integer getters accept any integer value type whose value fits the asked type (writers
  // differ: token ids come as u32 or i32); bool and floats are not integers here.
  Result<std::string> GetString(std::string_view key) const;
  Result<uint32_t> GetU32(std::string_view key) const;
  Result<int32_t> GetI32(std::string_view key) const;
  Result<uint64_t> GetU64(std::string_view key) const;
  Result<int64_t> GetI64(std::string_view key) const;
  Result<float> GetF32(std::string_view key) const;  // f32, or f64 narrowed
  Result<bool> GetBool(std::string_view key) const;
  // Arrays. The string_views point into the file (see Lifetime above).
  Result<std::vector<std::string_view>> GetStringArray(std::string_view key) const;
  Result<std::vector<int64_t>> GetIntArray(std::string_view key) const;  // any integer type
  Result<std::vector<float>> GetF32Array(std::string_view key) const;    // f32 or f64
  Result<std::vector<bool>> GetBoolArray(std::string_view key) const;


 private:
  friend class GgufParser;
  // False when `key` is already present.
  bool Add(std::string key, GgufValue value);
  void set_source(std::string source) { source_ = std::move(source); }

  template <typename T>
  Result<T> GetInteger(std::string_view key, const char* type_name) const;
  Result<const GgufValue*> Require(std::string_view key, const char* expected) const;
  Result<const GgufValue*> RequireArray(std::string_view key, const char* expected) const;
  Error WrongType(std::string_view key, const GgufValue& value, const std::string& expected) const;

  std::string source_;  // file name, for messages
  std::vector<Entry> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::kF32;
  const GgmlTypeInfo* type_info = nullptr;  // never null after validation
  // GGUF order: shape[0] (ggml's ne[0]) is the fastest-varying, contiguous axis. A PyTorch
  // [out, in] weight is stored as {in, out}: reverse this to get the PyTorch shape.
  std::vector<int64_t> shape;
  uint64_t offset_bytes = 0;  // from the start of the data section, as written in the file
  uint64_t size_bytes = 0;
  const uint8_t* data = nullptr;  // inside the mapping; nullptr when size_bytes is 0
  uint32_t shard = 0;             // index of the file holding it (GgufModel); 0 for GgufFile

  std::span<const uint8_t> bytes() const { return {data, static_cast<size_t>(size_bytes)}; }
  int64_t num_elements() const;
  std::string ShapeString() const;  // "[2816, 262144]" in GGUF order
};

class GgufFile {
 public:
  static constexpr uint64_t kDefaultAlignment = 32;
  static constexpr uint64_t kMaxAlignment = 1ull << 20;
  static constexpr int kMaxArrayDepth = 4;  // an array of arrays of arrays of arrays
  static constexpr uint64_t kMaxKeyBytes = 65535;
  static constexpr uint64_t kMaxTensorNameBytes = 1024;
  static constexpr uint32_t kMaxDims = 4;

  // Maps and validates `path` (see the file comment for the errors).
  static Result<GgufFile> Open(const std::string& path);
  // Validates an in-memory image without copying it; the result points into `image`, which
  // must outlive it. `name` names the image in messages. (The fuzz target's entry.)
  static Result<GgufFile> ParseImage(std::span<const uint8_t> image, const std::string& name);

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  // Where the data section starts in the file, and how many bytes it has.
  uint64_t data_offset() const { return data_offset_; }
  uint64_t data_size_bytes() const { return data_size_bytes_; }
  const GgufMetadata& metadata() const { return metadata_; }
  // In file order.
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  // nullptr when absent.
  const GgufTensor* FindTensor(std::string_view name) const;
  // kNotFound naming the tensor and the file when absent.
  Result<const GgufTensor*> GetTensor(std::string_view name) const;

 private:
  friend class GgufParser;
  std::unique_ptr<MappedFile> file_;  // empty for ParseImage
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  uint64_t data_size_bytes_ = 0;
  GgufMetadata metadata_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace kiln
