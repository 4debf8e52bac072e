#include "constraint/text_cursor.h"

#include "constraint/grammar.h"

namespace kiln::constraint {

Error TextCursor::ErrorAt(size_t pos, const std::string& message) const {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < pos && i < text_.size(); ++i) {
    if (text_[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return Error(ErrorCode::kInvalidArgument, what_ + " error at " + std::to_string(line) + ":" +
                                                std::to_string(column) + ": " + message);
}

Result<uint32_t> TextCursor::ReadCodepoint() {
  const size_t start = pos_;
  if (AtEnd()) return ErrorHere("unexpected end of input");
  const auto b0 = static_cast<uint8_t>(text_[pos_]);
  int length = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
  if (length == 0 || pos_ + length > text_.size()) return ErrorAt(start, "invalid UTF-8");
  uint32_t cp = length == 1 ? b0 : b0 & (0x7F >> length);
  for (int i = 1; i < length; ++i) {
    const auto b = static_cast<uint8_t>(text_[pos_ + i]);
    if ((b & 0xC0) != 0x80) return ErrorAt(start, "invalid UTF-8");
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr uint32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return ErrorAt(start, "invalid UTF-8");
  }
  pos_ += length;
  return cp;
}

Result<uint32_t> TextCursor::ReadHex(size_t digits, size_t escape_start) {
  uint32_t value = 0;
  for (size_t i = 0; i < digits; ++i) {
    const char c = Peek();
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return ErrorAt(escape_start, "expected " + std::to_string(digits) + " hex digits in escape");
    value = value * 16 + static_cast<uint32_t>(d);
    Advance();
  }
  return value;
}

Result<uint32_t> TextCursor::ReadEscapedCodepoint(size_t escape_start) {
  if (AtEnd()) return ErrorAt(escape_start, "unfinished escape at end of input");
  const char c = Peek();
  uint32_t cp = 0;
  switch (c) {
    case 'n': Advance(); return uint32_t{'\n'};
    case 'r': Advance(); return uint32_t{'\r'};
    case 't': Advance(); return uint32_t{'\t'};
    case 'f': Advance(); return uint32_t{'\f'};
    case 'v': Advance(); return uint32_t{'\v'};
    case '0': Advance(); return uint32_t{0};
    case 'x': Advance(); return ReadHex(2, escape_start);
    case 'U': {
      Advance();
      TRY_ASSIGN(cp, ReadHex(8, escape_start));
      break;
    }
    case 'u': {
      Advance();
      if (Peek() == '{') {
        Advance();
        size_t digits = 0;
        while (Peek() != '}' && !AtEnd() && digits < 8) {
          TRY_ASSIGN(uint32_t d, ReadHex(1, escape_start));
          cp = cp * 16 + d;
          ++digits;
        }
        if (Peek() != '}' || digits == 0) return ErrorAt(escape_start, "malformed \\u{...} escape");
        Advance();
      } else {
        TRY_ASSIGN(cp, ReadHex(4, escape_start));
      }
      break;
    }
    default:
      return ReadCodepoint();
  }
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return ErrorAt(escape_start, "escape is not a Unicode scalar value");
  }
  return cp;
}

Result<int64_t> TextCursor::ReadCount(size_t start, const std::string& noun) {
  if (Peek() < '0' || Peek() > '9') return ErrorHere("expected a number in the " + noun);
  int64_t value = 0;
  while (Peek() >= '0' && Peek() <= '9') {
    value = value * 10 + (Peek() - '0');
    if (value > kMaxRepetition) return ErrorAt(start, noun + " count above the limit of " + std::to_string(kMaxRepetition));
    Advance();
  }
  return value;
}

}  // namespace kiln::constraint
