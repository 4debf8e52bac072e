// Fuzz target for the safetensors header parser (SafetensorsFile::ParseImage): length prefix,
// JSON header, dtypes, shapes and byte ranges. Accepted tensors have their first and last byte
// read, so a range that escaped validation shows up under ASan. Built with libFuzzer when
// KILN_FUZZ=ON (clang); otherwise replays tests/io/fuzz_corpus/safetensors_header in ctest.
#include <cstddef>
#include <cstdint>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tensors = kiln::SafetensorsFile::ParseImage(data, size, "fuzz.safetensors");
  if (!tensors.has_value()) return 0;
  volatile uint64_t sink = 0;
  for (const kiln::TensorInfo& tensor : *tensors) {
    if (tensor.size_bytes > 0) sink = sink + tensor.data[0] + tensor.data[tensor.size_bytes - 1];
    sink = sink + tensor.ShapeString().size();
  }
  return 0;
}
