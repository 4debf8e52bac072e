#include "io/gguf_writer.h"

#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

namespace kiln {

namespace {

template <typename T>
GgufWriterValue Scalar(GgufValueType type, T v) {
  GgufWriterValue value;
  value.type = type;
  value.scalar.resize(sizeof(T));
  std::memcpy(value.scalar.data(), &v, sizeof(T));  // little-endian host (gguf_parser.cpp)
  return value;
}

template <typename T>
void Append(std::vector<uint8_t>* out, T v) {
  const size_t at = out->size();
  out->resize(at + sizeof(T));
  std::memcpy(out->data() + at, &v, sizeof(T));
}

void AppendString(std::vector<uint8_t>* out, const std::string& text) {
  Append<uint64_t>(out, text.size());
  out->insert(out->end(), text.begin(), text.end());
}

Status AppendValue(std::vector<uint8_t>* out, const GgufWriterValue& value, const std::string& key) {
  switch (value.type) {
    case GgufValueType::kString:
      AppendString(out, value.text);
      return Status::Ok();
    case GgufValueType::kArray:
      Append<uint32_t>(out, static_cast<uint32_t>(value.element_type));
      Append<uint64_t>(out, value.elements.size());
      for (const GgufWriterValue& element : value.elements) {
        if (element.type != value.element_type) {
          return Error(ErrorCode::kInvalidArgument,
                       "GGUF key '" + key + "': an array of " +
                           GgufValueTypeName(static_cast<uint32_t>(value.element_type)) +
                           " holds a " + GgufValueTypeName(static_cast<uint32_t>(element.type)));
        }
        TRY(AppendValue(out, element, key));
      }
      return Status::Ok();
    default:
      if (value.scalar.size() != GgufScalarBytes(static_cast<uint32_t>(value.type))) {
        return Error(ErrorCode::kInvalidArgument, "GGUF key '" + key + "': scalar of the wrong size");
      }
      out->insert(out->end(), value.scalar.begin(), value.scalar.end());
      return Status::Ok();
  }
}

void PadTo(std::vector<uint8_t>* out, uint64_t alignment) {
  out->resize((out->size() + alignment - 1) / alignment * alignment, 0);
}

}  // namespace

GgufWriterValue GgufWriterValue::U8(uint8_t v) { return Scalar(GgufValueType::kU8, v); }
GgufWriterValue GgufWriterValue::I8(int8_t v) { return Scalar(GgufValueType::kI8, v); }
GgufWriterValue GgufWriterValue::U16(uint16_t v) { return Scalar(GgufValueType::kU16, v); }
GgufWriterValue GgufWriterValue::I16(int16_t v) { return Scalar(GgufValueType::kI16, v); }
GgufWriterValue GgufWriterValue::U32(uint32_t v) { return Scalar(GgufValueType::kU32, v); }
GgufWriterValue GgufWriterValue::I32(int32_t v) { return Scalar(GgufValueType::kI32, v); }
GgufWriterValue GgufWriterValue::F32(float v) { return Scalar(GgufValueType::kF32, v); }
GgufWriterValue GgufWriterValue::Bool(bool v) { return Scalar<uint8_t>(GgufValueType::kBool, v ? 1 : 0); }
GgufWriterValue GgufWriterValue::U64(uint64_t v) { return Scalar(GgufValueType::kU64, v); }
GgufWriterValue GgufWriterValue::I64(int64_t v) { return Scalar(GgufValueType::kI64, v); }
GgufWriterValue GgufWriterValue::F64(double v) { return Scalar(GgufValueType::kF64, v); }

GgufWriterValue GgufWriterValue::From(const GgufValue& value) {
  // The parser validated the value against its type: every conversion below is exact.
  switch (value.type()) {
    case GgufValueType::kU8: return U8(static_cast<uint8_t>(*value.AsUint64()));
    case GgufValueType::kI8: return I8(static_cast<int8_t>(*value.AsInt64()));
    case GgufValueType::kU16: return U16(static_cast<uint16_t>(*value.AsUint64()));
    case GgufValueType::kI16: return I16(static_cast<int16_t>(*value.AsInt64()));
    case GgufValueType::kU32: return U32(static_cast<uint32_t>(*value.AsUint64()));
    case GgufValueType::kI32: return I32(static_cast<int32_t>(*value.AsInt64()));
    case GgufValueType::kU64: return U64(*value.AsUint64());
    case GgufValueType::kI64: return I64(*value.AsInt64());
    case GgufValueType::kF32: return F32(static_cast<float>(*value.AsDouble()));
    case GgufValueType::kF64: return F64(*value.AsDouble());
    case GgufValueType::kBool: return Bool(*value.AsBool());
    case GgufValueType::kString: return String(std::string(*value.AsString()));
    case GgufValueType::kArray: {
      std::vector<GgufWriterValue> elements;
      elements.reserve(static_cast<size_t>(value.count()));
      value.ForEachElement([&](const GgufValue& element) { elements.push_back(From(element)); });
      return Array(value.element_type(), std::move(elements));
    }
  }
  return {};
}

GgufWriterValue GgufWriterValue::String(std::string v) {
  GgufWriterValue value;
  value.type = GgufValueType::kString;
  value.text = std::move(v);
  return value;
}

GgufWriterValue GgufWriterValue::Array(GgufValueType element_type, std::vector<GgufWriterValue> elements) {
  GgufWriterValue value;
  value.type = GgufValueType::kArray;
  value.element_type = element_type;
  value.elements = std::move(elements);
  return value;
}

GgufWriterValue GgufWriterValue::StringArray(const std::vector<std::string>& values) {
  std::vector<GgufWriterValue> elements;
  for (const std::string& v : values) elements.push_back(String(v));
  return Array(GgufValueType::kString, std::move(elements));
}

GgufWriterValue GgufWriterValue::I32Array(const std::vector<int32_t>& values) {
  std::vector<GgufWriterValue> elements;
  for (int32_t v : values) elements.push_back(I32(v));
  return Array(GgufValueType::kI32, std::move(elements));
}

GgufWriterValue GgufWriterValue::F32Array(const std::vector<float>& values) {
  std::vector<GgufWriterValue> elements;
  for (float v : values) elements.push_back(F32(v));
  return Array(GgufValueType::kF32, std::move(elements));
}

void GgufWriter::Add(std::string key, GgufWriterValue value) {
  metadata_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::SetAlignment(uint32_t alignment) {
  alignment_ = alignment;
  Add("general.alignment", GgufWriterValue::U32(alignment));
}

Status GgufWriter::AddTensor(std::string name, GgmlType type, std::vector<int64_t> shape,
                             std::span<const uint8_t> bytes) {
  const GgmlTypeInfo* info = FindGgmlType(static_cast<uint32_t>(type));
  if (info == nullptr || shape.empty() || shape.size() > 4) {
    return Error(ErrorCode::kInvalidArgument, "GGUF tensor '" + name + "': bad type or rank");
  }
  int64_t elements = 1;
  for (int64_t extent : shape) {
    if (extent < 0 || __builtin_mul_overflow(elements, extent, &elements)) {
      return Error(ErrorCode::kInvalidArgument, "GGUF tensor '" + name + "': bad shape");
    }
  }
  if (shape[0] % info->block_elements != 0 ||
      static_cast<uint64_t>(elements / info->block_elements * info->block_bytes) != bytes.size()) {
    return Error(ErrorCode::kInvalidArgument,
                 "GGUF tensor '" + name + "': " + std::to_string(bytes.size()) +
                     " bytes do not match " + info->name + " of that shape");
  }
  tensors_.push_back(Tensor{std::move(name), type, std::move(shape), {bytes.begin(), bytes.end()}});
  return Status::Ok();
}

Result<std::vector<uint8_t>> GgufWriter::Encode() const {
  if (alignment_ == 0 || !std::has_single_bit(alignment_)) {
    return Error(ErrorCode::kInvalidArgument, "GGUF alignment " + std::to_string(alignment_) +
                                                  " is not a power of two");
  }
  std::set<std::string> keys, names;
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  Append<uint32_t>(&out, 3);
  Append<uint64_t>(&out, tensors_.size());
  Append<uint64_t>(&out, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    if (!keys.insert(key).second) return Error(ErrorCode::kInvalidArgument, "duplicate GGUF key '" + key + "'");
    AppendString(&out, key);
    Append<uint32_t>(&out, static_cast<uint32_t>(value.type));
    TRY(AppendValue(&out, value, key));
  }
  uint64_t data_offset = 0;
  for (const Tensor& tensor : tensors_) {
    if (!names.insert(tensor.name).second) {
      return Error(ErrorCode::kInvalidArgument, "duplicate GGUF tensor '" + tensor.name + "'");
    }
    AppendString(&out, tensor.name);
    Append<uint32_t>(&out, static_cast<uint32_t>(tensor.shape.size()));
    for (int64_t extent : tensor.shape) Append<int64_t>(&out, extent);
    Append<uint32_t>(&out, static_cast<uint32_t>(tensor.type));
    Append<uint64_t>(&out, data_offset);
    data_offset = (data_offset + tensor.bytes.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  PadTo(&out, alignment_);
  for (const Tensor& tensor : tensors_) {
    out.insert(out.end(), tensor.bytes.begin(), tensor.bytes.end());
    PadTo(&out, alignment_);
  }
  return out;
}

Status GgufWriter::WriteFile(const std::string& path) const {
  TRY_ASSIGN(std::vector<uint8_t> image, Encode());
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
    if (!out) {
      std::remove(temporary.c_str());
      return Error(ErrorCode::kIo, "cannot write " + temporary);
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return Error(ErrorCode::kIo, "cannot rename " + temporary + " to " + path);
  }
  return Status::Ok();
}

}  // namespace kiln
