// Read-only memory-mapped files.
//
// Weights are used straight from the page cache: a MappedFile maps the whole file once and hands
// out spans into it. The mapping lives as long as the MappedFile (move-only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"

namespace kiln {

class MappedFile {
 public:
  // Maps `path` read-only. kNotFound if it does not exist, kIo for other failures.
  static Result<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size_bytes() const { return size_bytes_; }
  std::span<const uint8_t> bytes() const { return {data_, size_bytes_}; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_bytes_ = 0;
  std::string path_;
};

// Reads a whole (small) file into a string: configs, JSON indexes.
Result<std::string> ReadTextFile(const std::string& path);

}  // namespace kiln
