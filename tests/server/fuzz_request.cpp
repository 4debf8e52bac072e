// Fuzz target for the request parsers: any bytes as an OpenAI chat body and completion body,
// and as Ollama's /api/chat and /api/generate bodies, for a model with and without a template.
// Parsing must return a request or an error, never crash, throw or read out of bounds. Built
// with libFuzzer when KILN_FUZZ=ON (clang); otherwise linked with fuzz_replay_main.cpp, which
// replays the seed corpus as a ctest test.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/ollama.h"
#include "server/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const kiln::server::ApiLimits limits = [] {
    kiln::server::ApiLimits l;
    l.context = 512;
    l.model_name = "brown-gemma4";
    return l;
  }();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto chat = kiln::server::ParseChatRequest(body, limits);
  if (chat.has_value()) (void)chat->generation.prompt.size();
  auto completion = kiln::server::ParseCompletionRequest(body, limits);
  if (!completion.has_value()) (void)completion.error().message().size();
  kiln::server::ApiLimits templated = limits;
  templated.has_chat_template = true;
  for (const kiln::server::ApiLimits* l : {&limits, static_cast<const kiln::server::ApiLimits*>(&templated)}) {
    (void)kiln::server::ParseChatRequest(body, *l);
    for (auto route : {kiln::server::OllamaRoute::kChat, kiln::server::OllamaRoute::kGenerate}) {
      auto ollama = kiln::server::ParseOllamaRequest(route, body, *l);
      if (ollama.has_value()) (void)ollama->api.generation.max_tokens;
    }
  }
  return 0;
}
