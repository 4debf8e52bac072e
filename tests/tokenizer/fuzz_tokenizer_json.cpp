// Fuzz target: tokenizer.json is untrusted input. Loading arbitrary bytes must return an error or
// a tokenizer; a loaded tokenizer must encode, decode and stream-decode anything without crashing
// and without emitting invalid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln::tokenizer;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  kiln::Result<Tokenizer> tok = LoadTokenizerJson(input);
  if (!tok.has_value()) return 0;
  for (std::string_view text : {input.substr(0, 256), std::string_view("Hello world \xF0\x9F\x98\x81 <s>\n\n x"),
                                std::string_view("\xFF\xC0\x80")}) {
    for (bool special : {false, true}) {
      const std::vector<TokenId> ids = tok->Encode(text, {.add_special_tokens = special, .parse_special = special});
      const std::string decoded = tok->Decode(ids, special);
      if (!IsValidUtf8(decoded)) __builtin_trap();
      StreamingDecoder stream(*tok);
      for (TokenId id : ids) {
        if (!IsValidUtf8(stream.Push(id))) __builtin_trap();
      }
      (void)stream.Flush();
    }
  }
  // Arbitrary ids, including out-of-range ones.
  std::vector<TokenId> ids;
  for (size_t i = 0; i + 1 < size && i < 64; i += 2) ids.push_back(static_cast<TokenId>(data[i] | (data[i + 1] << 8)) - 8);
  if (!IsValidUtf8(tok->Decode(ids))) __builtin_trap();
  return 0;
}
