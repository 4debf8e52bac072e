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

// Writes to `path` through a temporary file and a rename: a failure leaves nothing behind.
Status WriteNpyF32(const std::string& path, const float* values, const std::vector<int64_t>& shape);
// Reads a '<f4' C-order array; anything else is kUnsupported or kMalformed.
Result<NpyArray> ReadNpyF32(const std::string& path);

}  // namespace kiln
