// A read position in a grammar or regex source, shared by the text front ends: UTF-8 decoding,
// escapes, and errors that point at line:column.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "tokenizer/utf8.h"

namespace kiln::constraint {

class TextCursor {
 public:
  TextCursor(std::string_view text, std::string what) : text_(text), what_(std::move(what)) {}

  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek(size_t ahead = 0) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
  bool StartsWith(std::string_view s) const { return text_.substr(pos_).starts_with(s); }
  void Advance(size_t n = 1) { pos_ = std::min(text_.size(), pos_ + n); }
  size_t pos() const { return pos_; }
  void set_pos(size_t pos) { pos_ = pos; }
  std::string_view text() const { return text_; }

  // A decimal repetition count (the `m` and `n` of {m,n}), at most kMaxRepetition; `noun` names
  // it in errors ("expected a number in the <noun>", "<noun> count above the limit of ...").
  // `start` is where the repetition began.
  Result<int64_t> ReadCount(size_t start, const std::string& noun);

  // "<what> error at 3:14: <message>"; line and column count from 1, columns in bytes.
  Error ErrorHere(const std::string& message) const { return ErrorAt(pos_, message); }
  Error ErrorAt(size_t pos, const std::string& message) const;

  // Reads one UTF-8 encoded code point (kInvalidArgument on malformed UTF-8).
  Result<uint32_t> ReadCodepoint();
  // After a backslash: the common escapes \n \r \t \f \v \0 \xHH \uHHHH \UHHHHHHHH \u{H..} and
  // any other character standing for itself. `escape_start` is where the backslash was.
  Result<uint32_t> ReadEscapedCodepoint(size_t escape_start);

 private:
  Result<uint32_t> ReadHex(size_t digits, size_t escape_start);

  std::string_view text_;
  std::string what_;
  size_t pos_ = 0;
};

// UTF-8 of a code point: the tokenizer's encoder.
using tokenizer::AppendUtf8;

}  // namespace kiln::constraint
