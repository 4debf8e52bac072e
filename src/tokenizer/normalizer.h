// Normalizers: the first stage of encoding, applied to each piece of text between added tokens
// (HF tokenizers semantics). Built from tokenizer.json "normalizer" or by the GGUF loader.
//
//   Normalizer n;
//   n.steps.push_back({.kind = NormalizerKind::kReplace, .pattern = " ", .content = "\u2581"});
//   std::string out = n.Apply("a b");   // "a▁b"
//
// Supported kinds (HF type names): NFC, NFD, Replace (String pattern), Prepend, Lowercase (ASCII
// letters only), Strip, Sequence (flattened into `steps`). The loader rejects any other kind with
// kUnsupported naming it.
// Input must be valid UTF-8 (the tokenizer sanitizes first); output is valid UTF-8.
// Growth (growth_bound.h): NFC and NFD at most triple the UTF-8 length (UAX #15's bound, checked
// over every code point by the tests), Replace multiplies it by at most ceil(content / pattern)
// bytes, Prepend adds its content once; the others never grow text.
// Pure functions of their input; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/growth_bound.h"

namespace kiln::tokenizer {

enum class NormalizerKind {
  kNfc,        // Unicode canonical composition (tables: unicode_tables.inc)
  kNfd,        // Unicode canonical decomposition
  kReplace,    // every occurrence of `pattern` becomes `content`
  kPrepend,    // `content` in front of a non-empty string
  kLowercase,  // ASCII A-Z only
  kStrip,      // removes Unicode White_Space at the left (`strip_left`) and/or right
};

struct NormalizerStep {
  NormalizerKind kind = NormalizerKind::kNfc;
  std::string pattern;  // kReplace
  std::string content;  // kReplace, kPrepend
  bool strip_left = false;
  bool strip_right = false;
};

struct Normalizer {
  std::vector<NormalizerStep> steps;  // applied in order; empty = identity
  bool empty() const { return steps.empty(); }
  std::string Apply(std::string_view text) const;
  // Each step's worst-case growth, named by its tokenizer.json rule (growth_bound.h).
  std::vector<StepGrowth> Growth() const;
};

// Canonical decomposition (and composition, which only shortens) at most triples UTF-8 bytes.
inline constexpr uint64_t kMaxNormalizationFactor = 3;

// Unicode normalization forms of valid UTF-8 text. Fast path: text with no combining mark,
// decomposable character or Hangul jamo (checked with a bitmap) is returned unchanged.
std::string NormalizeNfc(std::string_view text);
std::string NormalizeNfd(std::string_view text);

// True for code points with the Unicode White_Space property.
bool IsUnicodeWhitespace(char32_t code_point);

}  // namespace kiln::tokenizer
