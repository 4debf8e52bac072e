#include "io/safetensors.h"

#include "io/json_file.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

namespace kiln {

namespace {

using json = nlohmann::json;

// Element sizes of every safetensors dtype, so that sizes are validated even for tensors kiln
// does not compute with.
std::optional<size_t> SafetensorsElementSize(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},   {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2},  {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
      {"I64", 8},  {"U64", 8},  {"F64", 8}};
  auto it = sizes.find(dtype);
  if (it == sizes.end()) return std::nullopt;
  return it->second;
}

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

Error Malformed(const std::string& path, const std::string& what) {
  return Error(ErrorCode::kMalformed, path + ": " + what);
}

}  // namespace

int64_t TensorInfo::num_elements() const {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

std::string TensorInfo::ShapeString() const {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

Result<std::vector<TensorInfo>> SafetensorsFile::ParseImage(const uint8_t* data,
                                                            size_t size_bytes,
                                                            const std::string& path) {
  if (size_bytes < 8) {
    return Malformed(path, "file is " + std::to_string(size_bytes) +
                               " bytes, too short for the 8-byte header length (truncated?)");
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | data[i];
  if (header_bytes > kMaxHeaderBytes) {
    return Malformed(path, "header length " + std::to_string(header_bytes) +
                               " exceeds the limit of " + std::to_string(kMaxHeaderBytes) +
                               " bytes; this is not a safetensors file or it is corrupt");
  }
  if (8 + header_bytes > size_bytes) {
    return Malformed(path, "header of " + std::to_string(header_bytes) +
                               " bytes does not fit in a file of " + std::to_string(size_bytes) +
                               " bytes (truncated?)");
  }
  const char* header_begin = reinterpret_cast<const char*>(data + 8);
  if (Status unique = RejectDuplicateKeys(std::string_view(header_begin, header_bytes), path + " header"); !unique.ok()) {
    return unique.error();
  }
  json header = json::parse(header_begin, header_begin + header_bytes, nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Malformed(path, "header is not a JSON object");
  }
  const uint64_t data_bytes = size_bytes - 8 - header_bytes;
  const uint8_t* data_begin = data + 8 + header_bytes;

  std::vector<TensorInfo> tensors;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) return Malformed(path, where + " entry is not an object");
    auto dtype_it = entry.find("dtype");
    auto shape_it = entry.find("shape");
    auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      return Malformed(path, where + " has no string 'dtype'");
    }
    if (shape_it == entry.end() || !shape_it->is_array()) {
      return Malformed(path, where + " has no array 'shape'");
    }
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      return Malformed(path, where + " needs 'data_offsets' = [begin, end] of unsigned integers");
    }
    TensorInfo info;
    info.name = name;
    info.file = path;
    info.dtype_name = dtype_it->get<std::string>();
    auto element_size = SafetensorsElementSize(info.dtype_name);
    if (!element_size) return Malformed(path, where + " has unknown dtype '" + info.dtype_name + "'");
    if (auto dtype = DTypeFromSafetensors(info.dtype_name)) info.dtype = *dtype;

    uint64_t expected_bytes = *element_size;
    for (const json& dim : *shape_it) {
      if (!dim.is_number_unsigned()) {
        return Malformed(path, where + " has a shape entry that is not a non-negative integer");
      }
      const uint64_t extent = dim.get<uint64_t>();
      if (extent > (1ull << 40) || MulOverflows(expected_bytes, extent, &expected_bytes)) {
        return Malformed(path, where + " has a shape whose byte size overflows");
      }
      info.shape.push_back(static_cast<int64_t>(extent));
    }
    const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
    const uint64_t end = (*offsets_it)[1].get<uint64_t>();
    if (begin > end || end > data_bytes) {
      return Malformed(path, where + " byte range [" + std::to_string(begin) + ", " +
                                 std::to_string(end) + ") lies outside the data section of " +
                                 std::to_string(data_bytes) + " bytes (truncated file?)");
    }
    if (end - begin != expected_bytes) {
      return Malformed(path, where + " holds " + std::to_string(end - begin) + " bytes but " +
                                 info.dtype_name + " " + info.ShapeString() + " needs " +
                                 std::to_string(expected_bytes));
    }
    info.data = data_begin + begin;
    info.size_bytes = static_cast<size_t>(expected_bytes);
    if (expected_bytes > 0) ranges.emplace_back(begin, end);
    tensors.push_back(std::move(info));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      return Malformed(path, "two tensors share bytes at data offset " +
                                 std::to_string(ranges[i].first));
    }
  }
  return tensors;
}

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  TRY_ASSIGN(MappedFile mapped, MappedFile::Open(path));
  SafetensorsFile file;
  file.file_ = std::make_unique<MappedFile>(std::move(mapped));
  TRY_ASSIGN(file.tensors_, ParseImage(file.file_->data(), file.file_->size_bytes(), path));
  return file;
}

Result<Checkpoint> Checkpoint::Open(const std::string& dir) {
  namespace fs = std::filesystem;
  Checkpoint checkpoint;
  checkpoint.dir_ = dir;
  std::vector<std::string> shard_names;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single_path = fs::path(dir) / "model.safetensors";
  std::map<std::string, std::string> weight_map;
  std::error_code ec;
  if (fs::exists(index_path, ec)) {
    TRY_ASSIGN(std::string text, ReadTextFile(index_path.string()));
    TRY(RejectDuplicateKeys(text, index_path.string()));
    json index = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
        !index["weight_map"].is_object()) {
      return Malformed(index_path.string(), "expected a JSON object with a 'weight_map' object");
    }
    std::set<std::string> unique;
    for (auto& [name, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) return Malformed(index_path.string(), "shard of '" + name + "' is not a string");
      const std::string shard_name = shard.get<std::string>();
      if (shard_name.find('/') != std::string::npos || shard_name.find("..") != std::string::npos) {
        return Malformed(index_path.string(), "shard name '" + shard_name + "' is not a plain file name");
      }
      weight_map[name] = shard_name;
      if (unique.insert(shard_name).second) shard_names.push_back(shard_name);
    }
  } else if (fs::exists(single_path, ec)) {
    shard_names.push_back("model.safetensors");
  } else {
    return Error(ErrorCode::kNotFound,
                 "no model.safetensors or model.safetensors.index.json in " + dir);
  }
  for (const std::string& shard : shard_names) {
    TRY_ASSIGN(SafetensorsFile file, SafetensorsFile::Open((fs::path(dir) / shard).string()));
    for (const TensorInfo& info : file.tensors()) {
      auto mapped = weight_map.find(info.name);
      if (!weight_map.empty() && (mapped == weight_map.end() || mapped->second != shard)) continue;
      if (!checkpoint.tensors_.emplace(info.name, info).second) {
        return Malformed(shard, "tensor '" + info.name + "' appears in two shards");
      }
    }
    checkpoint.files_.push_back(std::move(file));
  }
  for (const auto& [name, shard] : weight_map) {
    if (!checkpoint.tensors_.count(name)) {
      return Malformed(index_path.string(),
                       "index names tensor '" + name + "' in " + shard + ", which does not hold it");
    }
  }
  return checkpoint;
}

Checkpoint Checkpoint::FromTensors(std::string source, std::map<std::string, TensorInfo> tensors,
                                   std::shared_ptr<const void> owner) {
  Checkpoint checkpoint;
  checkpoint.dir_ = std::move(source);
  checkpoint.tensors_ = std::move(tensors);
  checkpoint.owner_ = std::move(owner);
  return checkpoint;
}

Status Checkpoint::Merge(Checkpoint other, const std::string& prefix, const std::string& strip) {
  auto owner = std::make_shared<const Checkpoint>(std::move(other));
  std::map<std::string, TensorInfo> added;
  for (const auto& [name, info] : owner->tensors_) {
    const std::string merged = prefix + (name.rfind(strip, 0) == 0 ? name.substr(strip.size()) : name);
    if (tensors_.count(merged) || added.count(merged)) {
      return Error(ErrorCode::kInvalidArgument, "tensor '" + name + "' of " + owner->dir_ + " would be '" + merged + "', a name taken already");
    }
    TensorInfo renamed = info;
    renamed.name = merged;  // the name Find() knows it by
    added.emplace(merged, std::move(renamed));
  }
  tensors_.merge(added);
  merged_.push_back(std::move(owner));
  return Status::Ok();
}

Status Checkpoint::NarrowIntegerTensors() {
  for (auto& [name, info] : tensors_) {
    if (info.dtype_name != "I64") continue;
    std::vector<int32_t> narrowed(static_cast<size_t>(info.num_elements()));
    for (size_t i = 0; i < narrowed.size(); ++i) {
      int64_t value;
      std::memcpy(&value, info.data + i * 8, 8);  // little-endian, as safetensors stores it
      if (value < INT32_MIN || value > INT32_MAX) {
        return Error(ErrorCode::kMalformed, "tensor '" + name + "' (I64) in " + info.file + " holds " + std::to_string(value) +
                                                " at element " + std::to_string(i) + ", outside the 32-bit range kiln computes with");
      }
      narrowed[i] = static_cast<int32_t>(value);
    }
    info.dtype_name = "I32";
    info.dtype = DType::kI32;
    info.data = reinterpret_cast<const uint8_t*>(narrowed.data());
    info.size_bytes = narrowed.size() * 4;
    narrowed_.push_back(std::move(narrowed));  // moving a vector keeps its buffer where info.data points
  }
  return Status::Ok();
}

const TensorInfo* Checkpoint::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, info] : tensors_) total += info.size_bytes;
  return total;
}

}  // namespace kiln
