// Accessors of a validated GGUF file. The parser (and every bounds check) is gguf_parser.cpp;
// everything here reads bytes it has already checked.
#include "io/gguf.h"

#include <cstring>
#include <limits>
#include <type_traits>

namespace kiln {

template <typename T>
T GgufValue::Load() const {
  T value;
  std::memcpy(&value, data_, sizeof(T));
  return value;
}

GgufValue GgufValue::ViewAt(GgufValueType type, const uint8_t* at, uint64_t offset,
                            uint64_t* consumed_bytes) {
  GgufValue value;
  value.type_ = type;
  value.count_ = 1;
  if (const uint64_t bytes = GgufScalarBytes(static_cast<uint32_t>(type))) {
    value.data_ = at;
    value.offset_ = offset;
    value.size_bytes_ = bytes;
    *consumed_bytes = bytes;
    return value;
  }
  if (type == GgufValueType::kString) {
    std::memcpy(&value.size_bytes_, at, 8);
    value.data_ = at + 8;
    value.offset_ = offset + 8;
    *consumed_bytes = 8 + value.size_bytes_;
    return value;
  }
  uint32_t element_type;
  std::memcpy(&element_type, at, 4);
  std::memcpy(&value.count_, at + 4, 8);
  value.element_type_ = static_cast<GgufValueType>(element_type);
  value.data_ = at + 12;
  value.offset_ = offset + 12;
  if (const uint64_t bytes = GgufScalarBytes(element_type)) {
    value.size_bytes_ = value.count_ * bytes;
  } else {
    uint64_t walked = 0;
    for (uint64_t i = 0; i < value.count_; ++i) {
      uint64_t element_bytes = 0;
      ViewAt(value.element_type_, value.data_ + walked, value.offset_ + walked, &element_bytes);
      walked += element_bytes;
    }
    value.size_bytes_ = walked;
  }
  *consumed_bytes = 12 + value.size_bytes_;
  return value;
}

std::optional<int64_t> GgufValue::AsInt64() const {
  switch (type_) {
    case GgufValueType::kU8: return Load<uint8_t>();
    case GgufValueType::kI8: return Load<int8_t>();
    case GgufValueType::kU16: return Load<uint16_t>();
    case GgufValueType::kI16: return Load<int16_t>();
    case GgufValueType::kU32: return Load<uint32_t>();
    case GgufValueType::kI32: return Load<int32_t>();
    case GgufValueType::kI64: return Load<int64_t>();
    case GgufValueType::kU64: {
      const uint64_t v = Load<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(v);
    }
    default: return std::nullopt;
  }
}

std::optional<uint64_t> GgufValue::AsUint64() const {
  if (type_ == GgufValueType::kU64) return Load<uint64_t>();
  const std::optional<int64_t> v = AsInt64();
  if (!v || *v < 0) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

std::optional<double> GgufValue::AsDouble() const {
  if (type_ == GgufValueType::kF32) return Load<float>();
  if (type_ == GgufValueType::kF64) return Load<double>();
  return std::nullopt;
}

std::optional<bool> GgufValue::AsBool() const {
  if (type_ != GgufValueType::kBool) return std::nullopt;
  return Load<uint8_t>() != 0;
}

std::optional<std::string_view> GgufValue::AsString() const {
  if (type_ != GgufValueType::kString) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(data_), static_cast<size_t>(size_bytes_));
}

std::vector<GgufValue> GgufValue::Elements() const {
  std::vector<GgufValue> elements;
  elements.reserve(type_ == GgufValueType::kArray ? static_cast<size_t>(count_) : 0);
  ForEachElement([&](const GgufValue& element) { elements.push_back(element); });
  return elements;
}

// --- GgufMetadata -------------------------------------------------------------------------

bool GgufMetadata::Add(std::string key, GgufValue value) {
  if (index_.count(key)) return false;
  index_.emplace(key, entries_.size());
  entries_.push_back(Entry{std::move(key), value});
  return true;
}

const GgufValue* GgufMetadata::Find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].value;
}

Error GgufMetadata::WrongType(std::string_view key, const GgufValue& value,
                              const std::string& expected) const {
  std::string found = GgufValueTypeName(static_cast<uint32_t>(value.type()));
  if (value.type() == GgufValueType::kArray) {
    found += " of " + GgufValueTypeName(static_cast<uint32_t>(value.element_type()));
  }
  return Error(ErrorCode::kMalformed, source_ + ": metadata key '" + std::string(key) +
                                          "' (at byte " + std::to_string(value.offset()) +
                                          "): expected " + expected + ", found " + found);
}

Result<const GgufValue*> GgufMetadata::Require(std::string_view key, const char* expected) const {
  const GgufValue* value = Find(key);
  if (value == nullptr) {
    return Error(ErrorCode::kNotFound, source_ + ": metadata key '" + std::string(key) +
                                           "' (" + expected + ") not found");
  }
  return value;
}

Result<const GgufValue*> GgufMetadata::RequireArray(std::string_view key,
                                                    const char* expected) const {
  TRY_ASSIGN(const GgufValue* value, Require(key, expected));
  if (value->type() != GgufValueType::kArray) return WrongType(key, *value, expected);
  return value;
}

// Any integer type whose value lies in T's range.
template <typename T>
Result<T> GgufMetadata::GetInteger(std::string_view key, const char* type_name) const {
  TRY_ASSIGN(const GgufValue* value, Require(key, type_name));
  if (!IsGgufIntegerType(value->type())) return WrongType(key, *value, type_name);
  if constexpr (std::is_unsigned_v<T>) {
    const std::optional<uint64_t> v = value->AsUint64();
    if (v && *v <= std::numeric_limits<T>::max()) return static_cast<T>(*v);
  } else {
    const std::optional<int64_t> v = value->AsInt64();
    if (v && *v >= std::numeric_limits<T>::min() && *v <= std::numeric_limits<T>::max()) {
      return static_cast<T>(*v);
    }
  }
  const std::optional<int64_t> s = value->AsInt64();
  const std::string shown = s ? std::to_string(*s) : std::to_string(*value->AsUint64());
  return WrongType(key, *value, std::string(type_name) + " (the value " + shown + " does not fit)");
}

Result<std::string> GgufMetadata::GetString(std::string_view key) const {
  TRY_ASSIGN(const GgufValue* value, Require(key, "string"));
  if (auto text = value->AsString()) return std::string(*text);
  return WrongType(key, *value, "string");
}

Result<uint32_t> GgufMetadata::GetU32(std::string_view key) const { return GetInteger<uint32_t>(key, "u32"); }
Result<int32_t> GgufMetadata::GetI32(std::string_view key) const { return GetInteger<int32_t>(key, "i32"); }
Result<uint64_t> GgufMetadata::GetU64(std::string_view key) const { return GetInteger<uint64_t>(key, "u64"); }
Result<int64_t> GgufMetadata::GetI64(std::string_view key) const { return GetInteger<int64_t>(key, "i64"); }

Result<float> GgufMetadata::GetF32(std::string_view key) const {
  TRY_ASSIGN(const GgufValue* value, Require(key, "f32"));
  if (auto v = value->AsDouble()) return static_cast<float>(*v);
  return WrongType(key, *value, "f32");
}

Result<bool> GgufMetadata::GetBool(std::string_view key) const {
  TRY_ASSIGN(const GgufValue* value, Require(key, "bool"));
  if (auto v = value->AsBool()) return *v;
  return WrongType(key, *value, "bool");
}

Result<std::vector<std::string_view>> GgufMetadata::GetStringArray(std::string_view key) const {
  TRY_ASSIGN(const GgufValue* value, RequireArray(key, "array of string"));
  if (value->element_type() != GgufValueType::kString) return WrongType(key, *value, "array of string");
  std::vector<std::string_view> out;
  out.reserve(static_cast<size_t>(value->count()));
  value->ForEachElement([&](const GgufValue& element) { out.push_back(*element.AsString()); });
  return out;
}

Result<std::vector<int64_t>> GgufMetadata::GetIntArray(std::string_view key) const {
  TRY_ASSIGN(const GgufValue* value, RequireArray(key, "array of integers"));
  if (!IsGgufIntegerType(value->element_type())) return WrongType(key, *value, "array of integers");
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(value->count()));
  bool fits = true;
  value->ForEachElement([&](const GgufValue& element) {
    const std::optional<int64_t> v = element.AsInt64();
    fits = fits && v.has_value();
    out.push_back(v.value_or(0));
  });
  if (!fits) return WrongType(key, *value, "array of integers that fit i64");
  return out;
}

Result<std::vector<float>> GgufMetadata::GetF32Array(std::string_view key) const {
  TRY_ASSIGN(const GgufValue* value, RequireArray(key, "array of f32"));
  if (value->element_type() != GgufValueType::kF32 && value->element_type() != GgufValueType::kF64) {
    return WrongType(key, *value, "array of f32");
  }
  std::vector<float> out;
  out.reserve(static_cast<size_t>(value->count()));
  value->ForEachElement([&](const GgufValue& element) { out.push_back(static_cast<float>(*element.AsDouble())); });
  return out;
}

Result<std::vector<bool>> GgufMetadata::GetBoolArray(std::string_view key) const {
  TRY_ASSIGN(const GgufValue* value, RequireArray(key, "array of bool"));
  if (value->element_type() != GgufValueType::kBool) return WrongType(key, *value, "array of bool");
  std::vector<bool> out;
  out.reserve(static_cast<size_t>(value->count()));
  value->ForEachElement([&](const GgufValue& element) { out.push_back(*element.AsBool()); });
  return out;
}

// --- tensors --------------------------------------------------------------------------------

int64_t GgufTensor::num_elements() const {
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;  // no overflow: checked by the parser
  return count;
}

std::string GgufTensor::ShapeString() const {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

const GgufTensor* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<const GgufTensor*> GgufFile::GetTensor(std::string_view name) const {
  if (const GgufTensor* tensor = FindTensor(name)) return tensor;
  return Error(ErrorCode::kNotFound, name_ + ": no tensor named '" + std::string(name) + "' (the file has " +
                                         std::to_string(tensors_.size()) + " tensors)");
}

}  // namespace kiln
