#include "io/gguf_model.h"

#include <cstdio>
#include <filesystem>

namespace kiln {

namespace {

constexpr std::string_view kSplitCountKey = "split.count";
constexpr std::string_view kSplitNoKey = "split.no";
constexpr std::string_view kSplitTensorsKey = "split.tensors.count";

bool AllDigits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

Error Inconsistent(const std::string& file, const std::string& what) {
  return Error(ErrorCode::kMalformed, file + ": split GGUF: " + what);
}

// split.no and split.count of one shard, or {0, 1} for a file without split keys.
Result<std::pair<uint32_t, uint32_t>> SplitKeys(const GgufFile& file) {
  if (!file.metadata().Has(kSplitCountKey)) return std::pair<uint32_t, uint32_t>{0, 1};
  TRY_ASSIGN(uint32_t count, file.metadata().GetU32(kSplitCountKey));
  TRY_ASSIGN(uint32_t number, file.metadata().GetU32(kSplitNoKey));
  if (count == 0 || count > GgufModel::kMaxShards || number >= count) {
    return Inconsistent(file.name(), "split.no = " + std::to_string(number) + ", split.count = " +
                                         std::to_string(count) + " (expected 0 <= split.no < " +
                                         "split.count <= " + std::to_string(GgufModel::kMaxShards) + ")");
  }
  return std::pair<uint32_t, uint32_t>{number, count};
}

}  // namespace

std::optional<GgufSplitName> ParseGgufSplitName(std::string_view file_name) {
  // <prefix>-NNNNN-of-MMMMM.gguf: 20 characters after the prefix.
  constexpr std::string_view kSuffix = ".gguf";
  if (file_name.size() <= 20 || !file_name.ends_with(kSuffix)) return std::nullopt;
  const std::string_view tail = file_name.substr(file_name.size() - 20);
  if (tail[0] != '-' || tail.substr(6, 4) != "-of-") return std::nullopt;
  const std::string_view shard = tail.substr(1, 5), count = tail.substr(10, 5);
  if (!AllDigits(shard) || !AllDigits(count)) return std::nullopt;
  GgufSplitName name;
  name.prefix = std::string(file_name.substr(0, file_name.size() - 20));
  name.shard = static_cast<uint32_t>(std::stoul(std::string(shard)));
  name.count = static_cast<uint32_t>(std::stoul(std::string(count)));
  return name;
}

std::string GgufSplitFileName(const std::string& prefix, uint32_t shard, uint32_t count) {
  char tail[32];
  std::snprintf(tail, sizeof(tail), "-%05u-of-%05u.gguf", shard, count);
  return prefix + tail;
}

Result<GgufModel> GgufModel::Open(const std::string& path) {
  namespace fs = std::filesystem;
  GgufModel model;
  TRY_ASSIGN(GgufFile first, GgufFile::Open(path));
  TRY_ASSIGN(auto first_keys, SplitKeys(first));
  const auto [first_number, count] = first_keys;
  model.shards_.push_back(std::move(first));
  if (count > 1) {
    const fs::path first_path(path);
    const std::string file_name = first_path.filename().string();
    const std::optional<GgufSplitName> split = ParseGgufSplitName(file_name);
    if (!split || split->count != count) {
      return Inconsistent(path, "split.count = " + std::to_string(count) +
                                    " but the file name is not of the form <prefix>-" +
                                    GgufSplitFileName("", 1, count).substr(1));
    }
    if (first_number != 0 || split->shard != 1) {
      return Error(ErrorCode::kInvalidArgument,
                   path + " is shard " + std::to_string(first_number + 1) + " of " +
                       std::to_string(count) + "; open the first shard, " +
                       GgufSplitFileName(split->prefix, 1, count));
    }
    for (uint32_t i = 1; i < count; ++i) {
      const std::string sibling =
          (first_path.parent_path() / GgufSplitFileName(split->prefix, i + 1, count)).string();
      std::error_code ec;
      if (!fs::exists(sibling, ec)) {
        return Error(ErrorCode::kNotFound, path + ": split GGUF shard " + std::to_string(i + 1) +
                                               " of " + std::to_string(count) + " is missing: " +
                                               sibling);
      }
      TRY_ASSIGN(GgufFile shard, GgufFile::Open(sibling));
      TRY_ASSIGN(auto keys, SplitKeys(shard));
      if (keys.first != i || keys.second != count) {
        return Inconsistent(sibling, "has split.no = " + std::to_string(keys.first) +
                                         ", split.count = " + std::to_string(keys.second) +
                                         "; its name says split.no = " + std::to_string(i) +
                                         ", split.count = " + std::to_string(count));
      }
      model.shards_.push_back(std::move(shard));
    }
  }
  for (uint32_t s = 0; s < model.shards_.size(); ++s) {
    for (const GgufTensor& tensor : model.shards_[s].tensors()) {
      if (!model.tensor_index_.emplace(tensor.name, model.tensors_.size()).second) {
        const uint32_t other = model.tensors_[model.tensor_index_.find(tensor.name)->second].shard;
        return Inconsistent(model.shards_[s].name(), "tensor '" + tensor.name +
                                                         "' is also in " + model.shards_[other].name());
      }
      model.tensors_.push_back(tensor);
      model.tensors_.back().shard = s;
    }
  }
  if (count > 1) {
    TRY_ASSIGN(uint64_t expected, model.metadata().GetU64(kSplitTensorsKey));
    if (expected != model.tensors_.size()) {
      return Inconsistent(path, "split.tensors.count = " + std::to_string(expected) + " but the " +
                                    std::to_string(count) + " shards hold " +
                                    std::to_string(model.tensors_.size()) + " tensors");
    }
  }
  return model;
}

Result<GgufModel> GgufModel::FromFile(GgufFile file) {
  TRY_ASSIGN(auto keys, SplitKeys(file));
  if (keys.second > 1) {
    return Error(ErrorCode::kInvalidArgument, file.name() + " is shard " + std::to_string(keys.first + 1) + " of " +
                                                  std::to_string(keys.second) + "; open the split model from its first file");
  }
  GgufModel model;
  model.shards_.push_back(std::move(file));
  for (const GgufTensor& tensor : model.shards_.front().tensors()) {
    model.tensor_index_.emplace(tensor.name, model.tensors_.size());  // unique: checked by the parser
    model.tensors_.push_back(tensor);
  }
  return model;
}

const GgufTensor* GgufModel::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<const GgufTensor*> GgufModel::GetTensor(std::string_view name) const {
  if (const GgufTensor* tensor = FindTensor(name)) return tensor;
  return Error(ErrorCode::kNotFound, shards_.front().name() + ": no tensor named '" +
                                         std::string(name) + "' (the model has " +
                                         std::to_string(tensors_.size()) + " tensors in " +
                                         std::to_string(shards_.size()) + " file(s))");
}

uint64_t GgufModel::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const GgufTensor& tensor : tensors_) total += tensor.size_bytes;
  return total;
}

}  // namespace kiln
