// Fuzz target for GGUF model import: a GGUF image through the reader, the model family's
// importers (metadata -> config.json, tensor names and shapes; models/gemma4_gguf.h: a model and
// an MTP drafter), the config parsers and the graph builder. Whatever the metadata says, each stage either accepts or
// returns an error; nothing crashes or sizes memory by an unchecked count.
// Built with libFuzzer when KILN_FUZZ=ON (clang); otherwise linked with fuzz_replay_main.cpp,
// which replays tests/io/fuzz_corpus/gguf_import as a ctest test.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/gguf_model.h"
#include "models/gemma4_assistant.h"
#include "models/model_family.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = kiln::GgufFile::ParseImage(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!file.has_value()) return 0;
  auto model = kiln::GgufModel::FromFile(std::move(*file));
  if (!model.has_value()) return 0;
  // As an MTP drafter too (gemma4-assistant): its config must parse as an assistant's or fail.
  if (auto assistant = kiln::ImportGgufAssistant(*model); assistant.has_value()) {
    for (const kiln::ImportedModel::Tensor& tensor : assistant->tensors) {
      if (tensor.source == nullptr || tensor.shape.size() != tensor.source->shape.size()) __builtin_trap();
    }
    (void)kiln::ParseGemma4AssistantConfig(assistant->config);
  }
  auto imported = kiln::ImportGgufModel(*model);
  if (!imported.has_value()) return 0;
  for (const kiln::ImportedModel::Tensor& tensor : imported->tensors) {
    if (tensor.source == nullptr || tensor.shape.size() != tensor.source->shape.size()) __builtin_trap();
  }
  auto architecture = kiln::ParseArchitecture(imported->config);
  // A graph is built only for geometries small enough to stay a fuzzing step.
  if (architecture.has_value() && (*architecture)->num_layers() <= 64) (void)(*architecture)->BuildGraph();
  return 0;
}
