// UTF-8 helpers shared by the tokenizer: decoding one code point, encoding, and repairing
// invalid input the way Rust's String::from_utf8_lossy and the WHATWG TextDecoder do.
//
//   std::string fixed = SanitizeUtf8("a\xFF" "b");   // "a\uFFFDb"
//   Utf8Assembler assembler;                         // streaming: bytes in, whole chars out
//   std::string out = assembler.Push(bytes);         // never ends inside a character
//   out += assembler.Flush();                        // a dangling partial char becomes U+FFFD
//
// Repair rule ("maximal subpart", Unicode 15 §3.9 / Table 3-8): every maximal prefix of a
// well-formed sequence that cannot be completed is replaced by one U+FFFD, so "\xE2\x82" followed
// by "A" gives "\uFFFDA", and each stray continuation byte gives its own U+FFFD.
// All functions are pure and thread-safe; Utf8Assembler is a value type, one per stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::tokenizer {

inline constexpr char32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// Length of the well-formed sequence starting at text[pos] (1-4), or 0 when the bytes at pos
// are not a complete well-formed sequence. `*maximal_subpart_bytes` (optional) receives the
// number of bytes to replace with one U+FFFD in that case (>= 1), and `*incomplete` whether the
// sequence was merely cut short by the end of `text` (a streaming caller waits for more bytes).
size_t Utf8SequenceLength(std::string_view text, size_t pos, size_t* maximal_subpart_bytes = nullptr,
                          bool* incomplete = nullptr);

// Decodes the well-formed sequence at text[pos] of length `length` (from Utf8SequenceLength).
char32_t DecodeUtf8At(std::string_view text, size_t pos, size_t length);

// Appends the UTF-8 encoding of `code_point` (must be a scalar value) to `out`.
void AppendUtf8(char32_t code_point, std::string* out);

// True when `text` is entirely well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

// `text` with every ill-formed subsequence replaced by U+FFFD (see the repair rule above).
// Returns a copy of `text` when it is already valid.
std::string SanitizeUtf8(std::string_view text);

// Turns a byte stream into whole UTF-8 characters: Push returns the longest prefix of complete
// characters seen so far (ill-formed bytes repaired), keeping a trailing partial sequence for
// the next call. The concatenation of all Push results and Flush equals SanitizeUtf8 of the
// concatenated input.
class Utf8Assembler {
 public:
  std::string Push(std::string_view bytes);
  // Emits U+FFFD for a pending partial sequence and resets.
  std::string Flush();
  bool has_pending() const { return !pending_.empty(); }

 private:
  std::string pending_;  // at most 3 bytes of an incomplete sequence
};

}  // namespace kiln::tokenizer
