// A compiled PCRE2 regular expression for pre-tokenizer splits (UTF + Unicode properties, JIT
// when available). Patterns come from tokenizer.json (Oniguruma syntax in HF); the subset used by
// real tokenizers — \p{L}, \p{N}, \s, (?i:...), (?!...), possessive-free alternations — means the
// same in PCRE2.
//
//   TRY_ASSIGN(Regex re, Regex::Compile("\\p{N}{1,3}"));
//   re.ForEachMatch("a 123", [](size_t begin, size_t end) { ... });   // byte offsets
//
// Thread-safety: a Regex may be used from many threads at once (match data is per call).
// Matching limits: PCRE2's match limit guards against catastrophic backtracking; a match that
// hits it ends the scan early (the rest of the text is treated as unmatched).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace kiln::tokenizer {

class Regex {
 public:
  // kInvalidArgument naming the pattern and PCRE2's message when it does not compile.
  static Result<Regex> Compile(std::string_view pattern);

  // Calls on_match(begin, end) for each non-overlapping, non-empty match, left to right.
  // `text` must be valid UTF-8.
  void ForEachMatch(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::string pattern_;
  std::shared_ptr<const Impl> impl_;  // immutable after Compile; shared by copies
};

}  // namespace kiln::tokenizer
