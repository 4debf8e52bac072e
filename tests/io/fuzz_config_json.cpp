// Fuzz target for the Gemma 4 config.json parsers: bytes -> JSON (without exceptions) ->
// ParseGemma4Config, then the summary of anything accepted; and ParseGemma4AssistantConfig, then
// the MTP draft graph of anything accepted against a small fixed target. Built with libFuzzer
// when KILN_FUZZ=ON (clang); otherwise replays tests/io/fuzz_corpus/config_json in ctest.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "models/gemma4_assistant.h"
#include "models/gemma4_builder.h"
#include "models/gemma4_config.h"

namespace {

// A target with sliding and full layers (the g31b fixture's shape, fewer layers).
const kiln::Gemma4Config& Target() {
  static const kiln::Gemma4Config target = *kiln::ParseGemma4Config(nlohmann::json::parse(R"({
    "model_type": "gemma4_text", "hidden_size": 48, "intermediate_size": 24, "num_hidden_layers": 2,
    "layer_types": ["sliding_attention", "full_attention"], "num_attention_heads": 4, "num_key_value_heads": 2,
    "head_dim": 16, "global_head_dim": 32, "sliding_window": 6, "vocab_size": 512, "hidden_size_per_layer_input": 0})"));
  return target;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json document = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return 0;
  auto config = kiln::ParseGemma4Config(document);
  if (config.has_value()) {
    volatile size_t sink = config->Summary().size();
    (void)sink;
    (void)kiln::TruncateLayers(*config, 1);
  }
  auto assistant = kiln::ParseGemma4AssistantConfig(document);
  if (assistant.has_value()) {
    static const kiln::Graph target = *kiln::BuildGemma4Graph(Target(), /*hidden_output=*/true);
    (void)kiln::BuildGemma4DraftGraph(Target(), target, *assistant);
  }
  return 0;
}
