// NumPy .npy files (format 1.0, little-endian float32, C order): the exchange format for logits,
// so that anyone can compare kiln with another implementation in two lines of Python.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace kiln {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Writes to `path` as an OutputFile (io/output_file.h): a regular file through a temporary and a
// rename, a device or FIFO in place; every write error is kIo.
Status WriteNpyF32(const std::string& path, const float* values, const std::vector<int64_t>& shape);
// Reads a '<f4' C-order array; anything else is kUnsupported or kMalformed.
Result<NpyArray> ReadNpyF32(const std::string& path);

}  // namespace kiln
