// GgufFile::Open / ParseImage: the validating parser. The accessors are in gguf.cpp.
#include <algorithm>
#include <bit>
#include <cstring>

#include "io/gguf.h"

namespace kiln {

static_assert(std::endian::native == std::endian::little,
              "GGUF values are read in place and are little-endian");

class GgufParser {
 public:
  GgufParser(std::span<const uint8_t> image, const std::string& name)
      : data_(image.data()), size_(image.size()), name_(name) {}

  Result<GgufFile> Parse() {
    GgufFile file;
    file.name_ = name_;
    file.metadata_.set_source(name_);
    TRY(ParseHeader(&file));
    for (uint64_t k = 0; k < num_keys_; ++k) TRY(ParseKeyValue(&file.metadata_));
    TRY(ParseAlignment(&file));
    for (uint64_t t = 0; t < num_tensors_; ++t) TRY(ParseTensorInfo(&file));
    // The data section starts at the next multiple of the alignment. A file without tensor
    // bytes may end before it (vocab-only files written without the padding).
    file.data_offset_ = (pos_ + file.alignment_ - 1) / file.alignment_ * file.alignment_;
    file.data_size_bytes_ = file.data_offset_ <= size_ ? size_ - file.data_offset_ : 0;
    TRY(CheckTensorRanges(&file));
    return file;
  }

 private:
  // The fewest bytes a key/value pair (8-byte length, a 1-byte key, type, 1-byte value) and a
  // tensor info (8-byte length, a 1-byte name, n_dims, one dim, type, offset) can take: a
  // count larger than the remaining bytes allow is refused before anything is allocated.
  static constexpr uint64_t kMinKeyValueBytes = 8 + 1 + 4 + 1;
  static constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

  uint64_t remaining() const { return size_ - pos_; }

  Error Malformed(uint64_t at, const std::string& what) const {
    return Error(ErrorCode::kMalformed, name_ + ": at byte " + std::to_string(at) + ": " + what);
  }

  // `where` + " " + `what` names the field in messages; they are joined only on failure,
  // because this runs for each of the ~800k strings of a real vocabulary.
  static std::string Describe(std::string_view where, std::string_view what) {
    std::string text(where);
    if (!text.empty()) text += ' ';
    return text.append(what);
  }

  Status Need(uint64_t bytes, std::string_view where, std::string_view what) const {
    if (bytes <= remaining()) return Status::Ok();
    return Malformed(pos_, Describe(where, what) + " needs " + std::to_string(bytes) +
                               " bytes but the file has " + std::to_string(remaining()) +
                               " left (truncated file?)");
  }

  template <typename T>
  Result<T> Read(std::string_view where, std::string_view what) {
    TRY(Need(sizeof(T), where, what));
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  Result<std::string_view> ReadString(std::string_view where, std::string_view what, uint64_t max_bytes) {
    const uint64_t at = pos_;
    if (remaining() < 8) return Need(8, where, Describe(what, "length")).error();
    uint64_t length;
    std::memcpy(&length, data_ + pos_, 8);
    pos_ += 8;
    if (length > max_bytes) {
      return Malformed(at, Describe(where, what) + " is " + std::to_string(length) +
                               " bytes long (at most " + std::to_string(max_bytes) + " allowed)");
    }
    if (length > remaining()) {
      return Need(length, where, Describe(what, "of " + std::to_string(length) + " bytes")).error();
    }
    std::string_view text(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(length));
    pos_ += length;
    return text;
  }

  Status ParseHeader(GgufFile* file) {
    if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0) {
      std::string found;
      static const char kHex[] = "0123456789abcdef";
      for (uint64_t i = 0; i < std::min<uint64_t>(size_, 4); ++i) {
        found += std::string(i ? " " : "") + kHex[data_[i] >> 4] + kHex[data_[i] & 15];
      }
      return Malformed(0, "not a GGUF file: expected the magic \"GGUF\" (47 47 55 46), found " +
                              (found.empty() ? std::string("an empty file") : found));
    }
    pos_ = 4;
    TRY_ASSIGN(uint32_t version, Read<uint32_t>("", "the version"));
    if (version != 2 && version != 3) {
      const uint32_t swapped = __builtin_bswap32(version);
      if (swapped >= 1 && swapped <= 3) {
        return Error(ErrorCode::kUnsupported,
                     name_ + ": a big-endian GGUF file (version field reads " +
                         std::to_string(version) + ", which is " + std::to_string(swapped) +
                         " byte-swapped); kiln reads little-endian GGUF files only");
      }
      const std::string hint = version == 1 ? "; GGUF v1 (32-bit counts, 2023) must be "
                                              "reconverted with a current llama.cpp"
                                            : "";
      return Error(ErrorCode::kVersionMismatch, name_ + ": GGUF version " + std::to_string(version) +
                                                    " is not supported (supported: 2, 3)" + hint);
    }
    file->version_ = version;
    const uint64_t tensors_at = pos_;
    TRY_ASSIGN(num_tensors_, Read<uint64_t>("", "the tensor count"));
    const uint64_t keys_at = pos_;
    TRY_ASSIGN(num_keys_, Read<uint64_t>("", "the key/value count"));
    if (num_tensors_ > remaining() / kMinTensorInfoBytes) {
      return Malformed(tensors_at, "tensor count " + std::to_string(num_tensors_) +
                                       " is more than the " + std::to_string(remaining()) +
                                       " remaining bytes can describe (at least " +
                                       std::to_string(kMinTensorInfoBytes) + " bytes each)");
    }
    if (num_keys_ > remaining() / kMinKeyValueBytes) {
      return Malformed(keys_at, "key/value count " + std::to_string(num_keys_) +
                                    " is more than the " + std::to_string(remaining()) +
                                    " remaining bytes can hold (at least " +
                                    std::to_string(kMinKeyValueBytes) + " bytes each)");
    }
    return Status::Ok();
  }

  Status ParseKeyValue(GgufMetadata* metadata) {
    const uint64_t at = pos_;
    TRY_ASSIGN(std::string_view key, ReadString("", "a metadata key", GgufFile::kMaxKeyBytes));
    if (key.empty()) return Malformed(at, "empty metadata key");
    const std::string where = "key '" + std::string(key) + "'";
    const uint64_t type_at = pos_;
    TRY_ASSIGN(uint32_t type, Read<uint32_t>(where, "value type"));
    if (type > static_cast<uint32_t>(GgufValueType::kF64)) {
      return Malformed(type_at, where + " has value type " + std::to_string(type) +
                                    " (expected 0 to 12)");
    }
    TRY_ASSIGN(GgufValue value, ReadValue(static_cast<GgufValueType>(type), 0, where));
    if (!metadata->Add(std::string(key), value)) {
      return Malformed(at, "duplicate " + where + " (first value at byte " +
                               std::to_string(metadata->Find(key)->offset()) + ")");
    }
    return Status::Ok();
  }

  // Validates one value of `type` at pos_ and returns a view of it. `depth` counts the arrays
  // around it, so a nesting bomb stops at kMaxArrayDepth.
  Result<GgufValue> ReadValue(GgufValueType type, int depth, const std::string& where) {
    GgufValue value;
    value.type_ = type;
    if (const uint64_t bytes = GgufScalarBytes(static_cast<uint32_t>(type))) {
      if (bytes > remaining()) {
        return Need(bytes, where, GgufValueTypeName(static_cast<uint32_t>(type)) + " value").error();
      }
      value.offset_ = pos_;
      value.data_ = data_ + pos_;
      value.size_bytes_ = bytes;
      value.count_ = 1;
      pos_ += bytes;
      return value;
    }
    if (type == GgufValueType::kString) {
      TRY_ASSIGN(std::string_view text, ReadString(where, "string", UINT64_MAX));
      value.offset_ = pos_ - text.size();
      value.data_ = reinterpret_cast<const uint8_t*>(text.data());
      value.size_bytes_ = text.size();
      value.count_ = 1;
      return value;
    }
    // An array.
    const uint64_t at = pos_;
    if (depth >= GgufFile::kMaxArrayDepth) {
      return Malformed(at, where + ": arrays nested more than " +
                               std::to_string(GgufFile::kMaxArrayDepth) + " deep");
    }
    TRY_ASSIGN(uint32_t element_type, Read<uint32_t>(where, "array element type"));
    if (element_type > static_cast<uint32_t>(GgufValueType::kF64)) {
      return Malformed(at, where + " is an array of value type " + std::to_string(element_type) +
                               " (expected 0 to 12)");
    }
    const uint64_t count_at = pos_;
    TRY_ASSIGN(uint64_t count, Read<uint64_t>(where, "array length"));
    uint64_t element_bytes = GgufScalarBytes(element_type);
    const bool fixed_size = element_bytes != 0;
    if (!fixed_size) element_bytes = element_type == 8 ? 8 : 4 + 8;  // string / array headers
    if (count > remaining() / element_bytes) {
      return Malformed(count_at, where + " is an array of " + std::to_string(count) + " " +
                                     GgufValueTypeName(element_type) + " values, needing at least " +
                                     std::to_string(element_bytes) + " bytes each, but the file has " +
                                     std::to_string(remaining()) + " bytes left");
    }
    value.element_type_ = static_cast<GgufValueType>(element_type);
    value.count_ = count;
    value.offset_ = pos_;
    value.data_ = data_ + pos_;
    if (fixed_size) {
      pos_ += count * element_bytes;  // fits: checked against remaining() above
    } else {
      const std::string element_where = where + " element";
      for (uint64_t i = 0; i < count; ++i) {
        TRY(ReadValue(value.element_type_, depth + 1, element_where).status());
      }
    }
    value.size_bytes_ = pos_ - value.offset_;
    return value;
  }

  Status ParseAlignment(GgufFile* file) {
    const GgufValue* value = file->metadata_.Find("general.alignment");
    if (value == nullptr) return Status::Ok();
    if (value->type() != GgufValueType::kU32) {
      return Malformed(value->offset(), "general.alignment must be a u32, found " +
                                            GgufValueTypeName(static_cast<uint32_t>(value->type())));
    }
    const uint64_t alignment = *value->AsUint64();
    if (alignment == 0 || !std::has_single_bit(alignment) || alignment > GgufFile::kMaxAlignment) {
      return Malformed(value->offset(), "general.alignment = " + std::to_string(alignment) +
                                            "; expected a power of two from 1 to " +
                                            std::to_string(GgufFile::kMaxAlignment));
    }
    file->alignment_ = alignment;
    return Status::Ok();
  }

  Status ParseTensorInfo(GgufFile* file) {
    const uint64_t at = pos_;
    TRY_ASSIGN(std::string_view name_view, ReadString("", "a tensor name", GgufFile::kMaxTensorNameBytes));
    if (name_view.empty()) return Malformed(at, "empty tensor name");
    GgufTensor tensor;
    tensor.name = std::string(name_view);
    const std::string where = "tensor '" + tensor.name + "'";
    const uint64_t dims_at = pos_;
    TRY_ASSIGN(uint32_t num_dims, Read<uint32_t>(where, "n_dims"));
    if (num_dims < 1 || num_dims > GgufFile::kMaxDims) {
      return Malformed(dims_at, where + " has " + std::to_string(num_dims) +
                                    " dimensions (expected 1 to " +
                                    std::to_string(GgufFile::kMaxDims) + ")");
    }
    int64_t elements = 1;
    bool overflow = false;
    for (uint32_t d = 0; d < num_dims; ++d) {
      const uint64_t dim_at = pos_;
      TRY_ASSIGN(int64_t extent, Read<int64_t>(where, "ne[" + std::to_string(d) + "]"));
      if (extent < 0) {
        return Malformed(dim_at, where + " has ne[" + std::to_string(d) + "] = " +
                                     std::to_string(extent) + " (expected >= 0)");
      }
      overflow = overflow || __builtin_mul_overflow(elements, extent, &elements);
      tensor.shape.push_back(extent);
    }
    const uint64_t type_at = pos_;
    TRY_ASSIGN(uint32_t type_id, Read<uint32_t>(where, "ggml type"));
    TRY_ASSIGN(tensor.offset_bytes, Read<uint64_t>(where, "data offset"));
    if (overflow) {
      return Malformed(dims_at, where + " has shape " + tensor.ShapeString() +
                                    ", whose element count overflows 64 bits");
    }
    tensor.type_info = FindGgmlType(type_id);
    if (tensor.type_info == nullptr) {
      return Error(ErrorCode::kUnsupported,
                   name_ + ": at byte " + std::to_string(type_at) + ": " + where +
                       " has ggml type " + std::to_string(type_id) +
                       ", which kiln does not know (a removed id, or a type newer than kiln)");
    }
    tensor.type = static_cast<GgmlType>(type_id);
    const int64_t block = tensor.type_info->block_elements;
    if (tensor.shape[0] % block != 0) {
      return Malformed(dims_at, where + " (" + tensor.type_info->name + ") has ne[0] = " +
                                    std::to_string(tensor.shape[0]) +
                                    ", not a multiple of the block size " + std::to_string(block));
    }
    int64_t size_bytes = 0;
    if (__builtin_mul_overflow(elements / block, tensor.type_info->block_bytes, &size_bytes)) {
      return Malformed(dims_at, where + " (" + tensor.type_info->name + " " +
                                    tensor.ShapeString() + ") has a byte size that overflows");
    }
    tensor.size_bytes = static_cast<uint64_t>(size_bytes);
    if (!file->tensor_index_.emplace(tensor.name, file->tensors_.size()).second) {
      return Malformed(at, "duplicate " + where);
    }
    info_offsets_.push_back(at);
    file->tensors_.push_back(std::move(tensor));
    return Status::Ok();
  }

  Status CheckTensorRanges(GgufFile* file) {
    const uint64_t data_size = file->data_size_bytes_;
    std::vector<size_t> order;
    for (size_t i = 0; i < file->tensors_.size(); ++i) {
      GgufTensor& tensor = file->tensors_[i];
      const std::string where = "tensor '" + tensor.name + "' (" + tensor.type_info->name + " " +
                                tensor.ShapeString() + ")";
      if (tensor.offset_bytes % file->alignment_ != 0) {
        return Malformed(info_offsets_[i], where + " has data offset " +
                                               std::to_string(tensor.offset_bytes) +
                                               ", not a multiple of the alignment " +
                                               std::to_string(file->alignment_));
      }
      if (tensor.offset_bytes > data_size || tensor.size_bytes > data_size - tensor.offset_bytes) {
        return Malformed(info_offsets_[i],
                         where + " needs " + std::to_string(tensor.size_bytes) +
                             " bytes at data offset " + std::to_string(tensor.offset_bytes) +
                             ", outside the data section of " + std::to_string(data_size) +
                             " bytes starting at byte " + std::to_string(file->data_offset_) +
                             " (truncated file?)");
      }
      // A zero-byte tensor may sit where the (empty) data section would start, past the end of
      // a file without padding: it gets no pointer rather than one outside the image.
      if (tensor.size_bytes > 0) {
        tensor.data = data_ + file->data_offset_ + tensor.offset_bytes;
        order.push_back(i);
      }
    }
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return file->tensors_[a].offset_bytes < file->tensors_[b].offset_bytes;
    });
    for (size_t k = 1; k < order.size(); ++k) {
      const GgufTensor& previous = file->tensors_[order[k - 1]];
      const GgufTensor& next = file->tensors_[order[k]];
      if (next.offset_bytes < previous.offset_bytes + previous.size_bytes) {
        return Malformed(info_offsets_[order[k]],
                         "tensor '" + next.name + "' at data offset " +
                             std::to_string(next.offset_bytes) + " overlaps tensor '" +
                             previous.name + "' (data bytes " +
                             std::to_string(previous.offset_bytes) + " to " +
                             std::to_string(previous.offset_bytes + previous.size_bytes) + ")");
      }
    }
    return Status::Ok();
  }

  const uint8_t* data_;
  uint64_t size_;
  std::string name_;
  uint64_t pos_ = 0;
  uint64_t num_tensors_ = 0;
  uint64_t num_keys_ = 0;
  std::vector<uint64_t> info_offsets_;  // where each tensor info starts, for messages
};

Result<GgufFile> GgufFile::ParseImage(std::span<const uint8_t> image, const std::string& name) {
  return GgufParser(image, name).Parse();
}

Result<GgufFile> GgufFile::Open(const std::string& path) {
  TRY_ASSIGN(MappedFile mapped, MappedFile::Open(path));
  auto owned = std::make_unique<MappedFile>(std::move(mapped));
  // The views point into the mapping, whose address does not change when it moves.
  TRY_ASSIGN(GgufFile file, ParseImage(owned->bytes(), path));
  file.file_ = std::move(owned);
  return file;
}

}  // namespace kiln
