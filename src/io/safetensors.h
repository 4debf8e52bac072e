// Safetensors checkpoints, memory-mapped.
//
// A .safetensors file is an 8-byte little-endian header length N, N bytes of JSON describing each
// tensor ({"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}}), then the
// data. Open() validates everything before any tensor is handed out, because checkpoints are
// untrusted input:
//   - N is bounded (kMaxHeaderBytes) and 8 + N fits in the file;
//   - the header is valid JSON with the expected fields and types;
//   - every tensor's byte range lies inside the data section, ranges do not overlap, and
//     end - begin == product(shape) * element size (overflow-checked).
// A Checkpoint is a directory holding model.safetensors, or model.safetensors.index.json plus
// its shards; it maps every shard and answers lookups by tensor name.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace kiln {

struct TensorInfo {
  std::string name;
  std::string dtype_name;       // as written in the file ("BF16")
  std::optional<DType> dtype;   // empty for dtypes kiln cannot compute with (e.g. I64)
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the file's mapping
  size_t size_bytes = 0;
  std::string file;             // the shard holding it, for messages

  int64_t num_elements() const;
  std::string ShapeString() const;  // "[4096, 3840]"
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

  // Maps and validates `path`. Errors: kNotFound, kIo, kMalformed (message names the problem).
  static Result<SafetensorsFile> Open(const std::string& path);
  // Validates an in-memory image (the fuzz target's entry; `path` only names it in messages).
  static Result<std::vector<TensorInfo>> ParseImage(const uint8_t* data, size_t size_bytes,
                                                   const std::string& path);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::unique_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

class Checkpoint {
 public:
  // `dir` holds model.safetensors or model.safetensors.index.json (+ the shards it names).
  static Result<Checkpoint> Open(const std::string& dir);
  // Tensors that live in files of another format (a GGUF model), under the names the model
  // family looks up. `owner` keeps their mapping alive; `source` names them in messages.
  static Checkpoint FromTensors(std::string source, std::map<std::string, TensorInfo> tensors,
                                std::shared_ptr<const void> owner);

  // Adds the tensors of `other` under `prefix` + their name, with `strip` removed where the name
  // begins with it (a drafter's "model.layers.0..." as "mtp.layers.0..."); `other`'s files stay
  // mapped while this checkpoint lives. kInvalidArgument when a name is taken already.
  Status Merge(Checkpoint other, const std::string& prefix, const std::string& strip);

  // I64 tensors become I32 ones, kiln's only integer type (a drafter's token ordering), copied
  // into memory this checkpoint owns. kMalformed naming the tensor and the value that does not fit.
  Status NarrowIntegerTensors();

  // nullptr when absent.
  const TensorInfo* Find(const std::string& name) const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::string& dir() const { return dir_; }
  // Sum of all tensor bytes.
  uint64_t total_bytes() const;

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, TensorInfo> tensors_;
  std::shared_ptr<const void> owner_;  // FromTensors: what maps the tensors' bytes
  std::vector<std::shared_ptr<const Checkpoint>> merged_;  // Merge: what maps their tensors' bytes
  std::vector<std::vector<int32_t>> narrowed_;  // NarrowIntegerTensors: the I32 copies
};

}  // namespace kiln
