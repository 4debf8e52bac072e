#include "tokenizer/json_scanner.h"

#include <cctype>

#include "tokenizer/utf8.h"

namespace kiln::tokenizer {

Error JsonScanner::MakeError(const std::string& what) const {
  return Error(ErrorCode::kMalformed, "JSON at byte " + std::to_string(pos_) + ": " + what);
}

void JsonScanner::SkipWhitespace() {
  while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t')) {
    ++pos_;
  }
}

char JsonScanner::Peek() {
  SkipWhitespace();
  return pos_ < text_.size() ? text_[pos_] : '\0';
}

bool JsonScanner::TryConsume(char c) {
  if (Peek() != c || pos_ >= text_.size()) return false;
  ++pos_;
  return true;
}

Status JsonScanner::Expect(char c) {
  if (TryConsume(c)) return Status::Ok();
  const char found = Peek();
  return MakeError(std::string("expected '") + c + "', found " +
                   (found == '\0' ? std::string("end of input") : "'" + std::string(1, found) + "'"));
}

Result<bool> JsonScanner::NextElement(char close) {
  if (TryConsume(',')) return true;
  if (TryConsume(close)) return false;
  return MakeError(std::string("expected ',' or '") + close + "'");
}

Result<std::string> JsonScanner::String() {
  std::string out;
  TRY(AppendString(&out));
  return out;
}

Status JsonScanner::AppendString(std::string* out_ptr) {
  std::string& out = *out_ptr;
  TRY(Expect('"'));
  while (true) {
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != '"' && text_[pos_] != '\\') ++pos_;
    out.append(text_.substr(start, pos_ - start));
    if (pos_ >= text_.size()) return MakeError("unterminated string");
    if (text_[pos_++] == '"') return Status::Ok();
    if (pos_ >= text_.size()) return MakeError("unterminated escape");
    const char e = text_[pos_++];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        auto hex4 = [&](uint32_t* value) -> bool {
          if (pos_ + 4 > text_.size()) return false;
          *value = 0;
          for (int i = 0; i < 4; ++i) {
            const char c = text_[pos_++];
            *value <<= 4;
            if (c >= '0' && c <= '9') *value |= c - '0';
            else if (c >= 'a' && c <= 'f') *value |= c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') *value |= c - 'A' + 10;
            else return false;
          }
          return true;
        };
        uint32_t cp = 0;
        if (!hex4(&cp)) return MakeError("bad \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF && pos_ + 6 <= text_.size() && text_[pos_] == '\\' && text_[pos_ + 1] == 'u') {
          const size_t save = pos_;
          pos_ += 2;
          uint32_t low = 0;
          if (hex4(&low) && low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else {
            pos_ = save;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = kReplacementChar;
        AppendUtf8(cp, &out);
        break;
      }
      default:
        return MakeError(std::string("bad escape '\\") + e + "'");
    }
  }
}

Result<int64_t> JsonScanner::Integer(int64_t min, int64_t max) {
  SkipWhitespace();
  bool negative = false;
  if (pos_ < text_.size() && text_[pos_] == '-') {
    negative = true;
    ++pos_;
  }
  const size_t start = pos_;
  int64_t value = 0;
  while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
    if (value > (INT64_MAX - 9) / 10) return MakeError("integer too large");
    value = value * 10 + (text_[pos_++] - '0');
  }
  if (pos_ == start) return MakeError("expected an integer");
  if (pos_ < text_.size() && (text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E')) {
    return MakeError("expected an integer, found a fraction");
  }
  if (negative) value = -value;
  if (value < min || value > max) {
    return MakeError("integer " + std::to_string(value) + " outside [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return value;
}

Status JsonScanner::SkipValue(int depth) {
  if (depth > kMaxDepth) return MakeError("nesting deeper than " + std::to_string(kMaxDepth));
  const char c = Peek();
  if (c == '"') return String().status();
  if (c == '{' || c == '[') {
    const char close = c == '{' ? '}' : ']';
    ++pos_;
    if (TryConsume(close)) return Status::Ok();
    while (true) {
      if (c == '{') {
        TRY(String());
        TRY(Expect(':'));
      }
      TRY(SkipValue(depth + 1));
      TRY_ASSIGN(bool more, NextElement(close));
      if (!more) return Status::Ok();
    }
  }
  const size_t start = pos_;
  while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '-' ||
                                 text_[pos_] == '+' || text_[pos_] == '.')) {
    ++pos_;
  }
  if (pos_ == start) return MakeError(c == '\0' ? "unexpected end of input" : std::string("unexpected '") + c + "'");
  return Status::Ok();
}

Result<std::string_view> JsonScanner::RawValue() {
  SkipWhitespace();
  const size_t start = pos_;
  TRY(SkipValue(0));
  return text_.substr(start, pos_ - start);
}

}  // namespace kiln::tokenizer
