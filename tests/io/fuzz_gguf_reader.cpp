// Fuzz target for the GGUF reader: the whole image through GgufFile::ParseImage, then every
// accessor over what it accepted, so a view that escaped validation shows up under ASan.
// Built with libFuzzer when KILN_FUZZ=ON (clang); otherwise linked with fuzz_replay_main.cpp,
// which replays tests/io/fuzz_corpus/gguf_reader as a ctest test.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/gguf.h"

namespace {

// Reads every byte a value covers, through the public accessors.
uint64_t Touch(const kiln::GgufValue& value, int depth) {
  uint64_t sum = value.count();
  if (auto s = value.AsString()) {
    for (char c : *s) sum += static_cast<uint8_t>(c);
  }
  if (auto i = value.AsInt64()) sum += static_cast<uint64_t>(*i);
  if (auto u = value.AsUint64()) sum += *u;
  if (auto d = value.AsDouble()) sum += *d == 0.0 ? 1 : 2;
  if (auto b = value.AsBool()) sum += *b;
  if (depth < 8) {
    for (const kiln::GgufValue& element : value.Elements()) sum += Touch(element, depth + 1);
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = kiln::GgufFile::ParseImage(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!file.has_value()) return 0;
  volatile uint64_t sink = 0;
  const kiln::GgufMetadata& m = file->metadata();
  for (const auto& entry : m.entries()) {
    sink = sink + Touch(entry.value, 0);
    // Every getter, whatever the type: each either converts or returns an error.
    (void)m.GetString(entry.key);
    (void)m.GetU32(entry.key);
    (void)m.GetI32(entry.key);
    (void)m.GetU64(entry.key);
    (void)m.GetI64(entry.key);
    (void)m.GetF32(entry.key);
    (void)m.GetBool(entry.key);
    (void)m.GetStringArray(entry.key);
    (void)m.GetIntArray(entry.key);
    (void)m.GetF32Array(entry.key);
    (void)m.GetBoolArray(entry.key);
  }
  for (const kiln::GgufTensor& tensor : file->tensors()) {
    if (file->FindTensor(tensor.name) != &tensor) __builtin_trap();
    if (tensor.size_bytes > 0) sink = sink + tensor.bytes().front() + tensor.bytes().back();
    sink = sink + static_cast<uint64_t>(tensor.num_elements());
  }
  return 0;
}
