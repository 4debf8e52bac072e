// GPT-2 byte-level alphabet: every byte 0-255 is shown as one printable Unicode character so that
// a byte-level BPE vocabulary is made of ordinary strings ("Ġ" is the space byte 0x20).
// Printable Latin-1 bytes map to themselves; the other 68 map to U+0100.. in byte order.
//
//   std::string mapped = ByteLevelEncode("a b");        // "aĠb"
//   std::string bytes;  ByteLevelDecode("aĠb", &bytes);  // "a b"
//
// Pure functions over static tables; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace kiln::tokenizer {

// Appends the byte-level form of `bytes` (any bytes) to `out`.
void ByteLevelEncode(std::string_view bytes, std::string* out);
inline std::string ByteLevelEncode(std::string_view bytes) {
  std::string out;
  ByteLevelEncode(bytes, &out);
  return out;
}

// Appends the bytes that `token` stands for. HF semantics: when any character of `token` is not
// in the byte-level alphabet (an added token such as "<|im_start|>" is all ASCII and maps to
// itself; "▁" would not), the token's own UTF-8 bytes are appended unchanged.
void ByteLevelDecode(std::string_view token, std::string* out);

}  // namespace kiln::tokenizer
