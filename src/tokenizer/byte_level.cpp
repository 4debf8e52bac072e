#include "tokenizer/byte_level.h"

#include <array>
#include <cstdint>

#include "tokenizer/utf8.h"

namespace kiln::tokenizer {
namespace {

struct Tables {
  std::array<char32_t, 256> byte_to_char{};
  std::array<int16_t, 0x144> char_to_byte{};  // chars used are < U+0144; -1 = not in alphabet
  std::array<std::string, 256> byte_to_utf8;
};

const Tables& GetTables() {
  static const Tables tables = [] {
    Tables t;
    t.char_to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t.byte_to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      t.char_to_byte[t.byte_to_char[b]] = static_cast<int16_t>(b);
      AppendUtf8(t.byte_to_char[b], &t.byte_to_utf8[b]);
    }
    return t;
  }();
  return tables;
}

}  // namespace

void ByteLevelEncode(std::string_view bytes, std::string* out) {
  const Tables& t = GetTables();
  out->reserve(out->size() + bytes.size() * 2);
  for (char c : bytes) out->append(t.byte_to_utf8[static_cast<unsigned char>(c)]);
}

void ByteLevelDecode(std::string_view token, std::string* out) {
  const Tables& t = GetTables();
  const size_t start = out->size();
  size_t pos = 0;
  while (pos < token.size()) {
    const size_t length = Utf8SequenceLength(token, pos);
    const char32_t cp = length == 0 ? kReplacementChar : DecodeUtf8At(token, pos, length);
    if (cp >= t.char_to_byte.size() || t.char_to_byte[cp] < 0) {
      out->resize(start);
      out->append(token);
      return;
    }
    out->push_back(static_cast<char>(t.char_to_byte[cp]));
    pos += length == 0 ? 1 : length;
  }
}

}  // namespace kiln::tokenizer
