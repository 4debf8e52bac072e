// A GGUF model that may be split over several files (llama.cpp's gguf-split), presented as one
// tensor table.
//
//   TRY_ASSIGN(GgufModel model, GgufModel::Open("dir/gemma-4-31b-q8_0-00001-of-00003.gguf"));
//   const GgufMetadata& meta = model.metadata();     // the first shard's keys
//   TRY_ASSIGN(const GgufTensor* t, model.GetTensor("blk.0.attn_q.weight"));
//   // t->shard says which file holds it; t->bytes() points into that file's mapping
//
// A plain file (no split.count key, or split.count = 1) opens as a model of one shard.
//
// Split models: shard i (1-based) is named <prefix>-<i as 5 digits>-of-<n as 5 digits>.gguf,
// all in the directory of the first. Each shard carries split.no (0-based), split.count and
// split.tensors.count (the total over all shards). Open() takes the first shard, derives the
// other names from its own (so they are plain names in the same directory, never paths read
// from the file), opens and fully validates every shard, and checks that split.no / split.count
// match the names, that the tensor counts add up to split.tensors.count, and that no tensor name
// appears in two shards.
//
// Errors: those of GgufFile::Open for each shard; kNotFound naming a missing shard;
// kInvalidArgument when the path given is not the first shard; kMalformed for inconsistent
// split keys or names.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"

namespace kiln {

// The parts of a shard file name "<prefix>-00002-of-00003.gguf" (shard 2 of 3).
struct GgufSplitName {
  std::string prefix;
  uint32_t shard = 0;  // 1-based, as in the name
  uint32_t count = 0;
};

// nullopt when `file_name` (no directory) does not have the split form.
std::optional<GgufSplitName> ParseGgufSplitName(std::string_view file_name);
// "<prefix>-00002-of-00003.gguf" for shard 2 (1-based) of 3.
std::string GgufSplitFileName(const std::string& prefix, uint32_t shard, uint32_t count);

class GgufModel {
 public:
  static constexpr uint32_t kMaxShards = 99999;  // five digits in the name

  // Opens a plain GGUF file or the first shard of a split model and all its siblings.
  static Result<GgufModel> Open(const std::string& path);
  // A model of one already-validated file (an in-memory image: fuzz targets, tests).
  // kInvalidArgument when its split keys say it is one shard of several.
  static Result<GgufModel> FromFile(GgufFile file);

  // The metadata of the first shard (llama.cpp keeps the model's keys there).
  const GgufMetadata& metadata() const { return shards_.front().metadata(); }
  // Every tensor of every shard, shard by shard in file order; GgufTensor::shard is the index
  // into shards().
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const std::vector<GgufFile>& shards() const { return shards_; }
  // nullptr when absent.
  const GgufTensor* FindTensor(std::string_view name) const;
  // kNotFound naming the tensor when absent.
  Result<const GgufTensor*> GetTensor(std::string_view name) const;
  // Sum of all tensor bytes.
  uint64_t total_tensor_bytes() const;

 private:
  std::vector<GgufFile> shards_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace kiln
