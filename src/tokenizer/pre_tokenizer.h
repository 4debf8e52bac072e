// Pre-tokenizers: split normalized text into words that BPE encodes independently (HF tokenizers
// semantics, one step per tokenizer.json pre-tokenizer; "Sequence" is flattened).
//
//   PreTokenizer p;
//   TRY_ASSIGN(Regex re, Regex::Compile("\\p{L}+|\\s+"));
//   p.steps.push_back({.kind = PreTokenizerKind::kSplit, .regex = re,
//                      .behavior = SplitBehavior::kIsolated});
//   std::vector<std::string> words;
//   p.Apply("ab  cd", /*is_first_segment=*/true, &words);   // {"ab", "  ", "cd"}
//
// Kinds: Split (String or Regex pattern, all five behaviors, invert), ByteLevel (optional GPT-2
// regex split, add_prefix_space, then maps bytes to the byte-level alphabet), Metaspace (replace
// ' ' by the replacement char, prepend scheme always/first/never, optional split).
// Growth (growth_bound.h): Split never grows text; ByteLevel writes at most 2 bytes per byte plus
// a prefix space (2 bytes) per word; Metaspace writes the replacement for each space and in front
// of each word. Words are never empty (except the one word of an empty text), so a per-word
// prefix of b bytes counts as b more bytes per input byte.
// Input must be valid UTF-8. Thread-safe (const use only).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/growth_bound.h"
#include "tokenizer/regex.h"

namespace kiln::tokenizer {

enum class PreTokenizerKind { kSplit, kByteLevel, kMetaspace };

// How a Split step treats the delimiters it matches (HF SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

enum class PrependScheme { kAlways, kFirst, kNever };

struct PreTokenizerStep {
  PreTokenizerKind kind = PreTokenizerKind::kSplit;
  // kSplit: exactly one of `literal` (a String pattern) or `regex` is used.
  std::string literal;
  std::optional<Regex> regex;  // kSplit regex; kByteLevel with use_regex: the GPT-2 pattern
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // kByteLevel
  bool add_prefix_space = false;
  // kMetaspace
  std::string replacement = "\xE2\x96\x81";  // "▁"
  PrependScheme prepend_scheme = PrependScheme::kAlways;
  bool split = true;
};

struct PreTokenizer {
  std::vector<PreTokenizerStep> steps;  // applied in order to every word; empty = one word

  // Appends the words of `text` to `words`. `is_first_segment` is true for the first piece of
  // the input (before any added token), which Metaspace's "first" prepend scheme needs.
  void Apply(std::string_view text, bool is_first_segment, std::vector<std::string>* words) const;
  // Each step's worst-case growth, named by its tokenizer.json rule (growth_bound.h).
  std::vector<StepGrowth> Growth() const;
  // True when some step maps to the byte-level alphabet (decoding must undo it).
  bool HasByteLevel() const;
};

// The GPT-2 split pattern used by ByteLevel with use_regex=true.
inline constexpr std::string_view kGpt2SplitPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

}  // namespace kiln::tokenizer
