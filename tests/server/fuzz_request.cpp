// Fuzz target for the OpenAI request parser: any bytes as a chat body and as a completion body.
// Parsing must return a request or an error, never crash, throw or read out of bounds. Built
// with libFuzzer when KILN_FUZZ=ON (clang); otherwise linked with fuzz_replay_main.cpp, which
// replays the seed corpus as a ctest test.
#include <cstddef>
#include <cstdint>
#include <string_view>

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
  return 0;
}
