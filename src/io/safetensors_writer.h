// Writing safetensors files: for benchmarks that synthesize random-weight models and for tests
// that build malformed variants of valid files. Tensors are laid out in the given order, each
// starting 8-byte aligned relative to the data section.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace kiln {

struct TensorToWrite {
  std::string name;
  std::string dtype;             // "BF16", "F16", "F32", ...
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
};

// The whole file image.
std::vector<uint8_t> EncodeSafetensors(std::span<const TensorToWrite> tensors);
// Writes through a temporary file and a rename.
Status WriteSafetensors(const std::string& path, std::span<const TensorToWrite> tensors);

}  // namespace kiln
