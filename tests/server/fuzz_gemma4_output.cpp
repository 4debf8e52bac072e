// Fuzz target for Gemma 4's output parser (server/gemma4_output.h). The first byte picks where
// the rest is cut in two; the parser must never crash, must give the same reply for the text fed
// whole, in those two pieces and byte by byte, must lose no text outside its markers, and every
// tool call's arguments must be a JSON object. Built with libFuzzer when KILN_FUZZ=ON (clang);
// otherwise linked with fuzz_replay_main.cpp, which replays the seed corpus as a ctest test.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "server/gemma4_output.h"

namespace {

using kiln::server::Gemma4OutputParser;
using kiln::server::ReplyDelta;

bool Same(const ReplyDelta& a, const ReplyDelta& b) {
  if (a.reasoning != b.reasoning || a.content != b.content || a.tool_calls.size() != b.tool_calls.size()) return false;
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    if (a.tool_calls[i].name != b.tool_calls[i].name || a.tool_calls[i].arguments != b.tool_calls[i].arguments) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = text.empty() ? 0 : data[0] % (text.size() + 1);
  for (bool tool_calls : {true, false}) {
    Gemma4OutputParser whole_parser({.tool_calls = tool_calls});
    ReplyDelta whole = whole_parser.Feed(text);
    whole.Append(whole_parser.Finish());

    Gemma4OutputParser split_parser({.tool_calls = tool_calls});
    ReplyDelta split = split_parser.Feed(text.substr(0, cut));
    split.Append(split_parser.Feed(text.substr(cut)));
    split.Append(split_parser.Finish());

    Gemma4OutputParser byte_parser({.tool_calls = tool_calls});
    ReplyDelta bytes;
    for (char c : text) bytes.Append(byte_parser.Feed(std::string_view(&c, 1)));
    bytes.Append(byte_parser.Finish());

    if (!Same(whole, split) || !Same(whole, bytes)) std::abort();
    // Output never grows beyond the input (markers and names are dropped, nothing is invented
    // except the JSON spelling of arguments).
    if (whole.content.size() + whole.reasoning.size() > text.size()) std::abort();
    for (const auto& call : whole.tool_calls) {
      const nlohmann::json arguments = nlohmann::json::parse(call.arguments, nullptr, /*allow_exceptions=*/false);
      if (arguments.is_discarded() || !arguments.is_object() || call.name.empty()) std::abort();
    }
  }
  return 0;
}
