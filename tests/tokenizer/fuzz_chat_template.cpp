// Fuzz target: chat templates are untrusted input. Parsing and rendering arbitrary bytes must
// return an error or a bounded rendering, never crash, hang or exhaust memory.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln::tokenizer;
  const std::string source(reinterpret_cast<const char*>(data), size);
  kiln::Result<ChatTemplate> tmpl = ChatTemplate::Parse(source, "<bos>", "<eos>");
  if (!tmpl.has_value()) return 0;
  ChatRequest request;
  request.messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "ok", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
    {"role": "tool", "content": "{\"x\": [1, 2.5, null, true]}"},
    {"role": "user", "content": [{"type": "text", "text": "part"}]}])");
  request.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])");
  kiln::tokenizer::jinja::RenderOptions options;
  options.limits.max_steps = 200000;
  options.limits.max_output_bytes = 1 << 18;
  options.limits.max_range_length = 100000;
  options.now = 0;
  (void)tmpl->Render(request, options);
  return 0;
}
