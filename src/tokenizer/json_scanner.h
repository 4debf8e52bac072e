// A small pull scanner over JSON text, for the two huge members of tokenizer.json
// (model.vocab: 262k entries, model.merges: 515k) that a DOM parser would take ~1 s to build.
// Everything else is small and is handed to nlohmann::json as a raw slice (RawValue).
//
//   JsonScanner s(text);
//   TRY(s.Expect('{'));
//   while (!s.TryConsume('}')) { TRY_ASSIGN(std::string key, s.String()); TRY(s.Expect(':')); ... }
//
// Untrusted input: every read is bounds-checked, nesting is limited to kMaxDepth, and errors
// carry the byte offset. Not thread-safe (a cursor); cheap to create.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace kiln::tokenizer {

class JsonScanner {
 public:
  static constexpr int kMaxDepth = 256;
  explicit JsonScanner(std::string_view text) : text_(text) {}

  // Skips whitespace; consumes `c` if it is next.
  bool TryConsume(char c);
  // Like TryConsume but an error (naming what was found) when `c` is not next.
  Status Expect(char c);
  // The next character after whitespace ('\0' at the end).
  char Peek();
  // A JSON string (escapes decoded, \u surrogate pairs joined; lone surrogates become U+FFFD).
  Result<std::string> String();
  // Like String() but appends the decoded text to *out (no temporary string).
  Status AppendString(std::string* out);
  // A JSON integer in [min, max].
  Result<int64_t> Integer(int64_t min, int64_t max);
  // Skips one value of any type and returns its raw text.
  Result<std::string_view> RawValue();
  // After an element of an array/object: consumes ',' (returns true) or the closing `close`
  // (returns false); anything else is an error.
  Result<bool> NextElement(char close);

  size_t offset() const { return pos_; }
  Error MakeError(const std::string& what) const;

 private:
  Status SkipValue(int depth);
  void SkipWhitespace();

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace kiln::tokenizer
