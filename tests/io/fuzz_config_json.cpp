// Fuzz target for the Gemma 4 config.json parser: bytes -> JSON (without exceptions) ->
// ParseGemma4Config, then the summary of anything accepted. Built with libFuzzer when
// KILN_FUZZ=ON (clang); otherwise replays tests/io/fuzz_corpus/config_json in ctest.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "models/gemma4_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json document = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return 0;
  auto config = kiln::ParseGemma4Config(document);
  if (config.has_value()) {
    volatile size_t sink = config->Summary().size();
    (void)sink;
    (void)kiln::TruncateLayers(*config, 1);
  }
  return 0;
}
