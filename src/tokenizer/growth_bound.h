// How much a tokenizer stage can grow the text it is given, worked out from the stage's rules
// alone, so that a hostile tokenizer.json is refused at load instead of turning a short prompt
// into gigabytes at encode time (validate at load, trust at run).
//
//   std::vector<StepGrowth> steps = normalizer.Growth();          // one entry per step
//   TRY(CheckStageGrowth("normalizer", steps));                   // kMalformed past the limits
//
// Model: a stage maps every non-empty piece of n bytes to at most factor * n + constant_bytes
// bytes (an empty piece may still become constant_bytes). Steps run one after the other, so
// their bounds compose: (a1, b1) then (a2, b2) is (a1 * a2, b1 * a2 + b2). The bound is an upper
// bound, not the exact worst case: Prepend "▁" then Replace " " -> "▁" gives (3, 9), the real
// worst case of one space being "▁▁" (6 bytes of 12 allowed).
//
// Limits, per stage: factor <= kMaxStageGrowthFactor and constant_bytes <=
// kMaxStageGrowthConstantBytes. Real tokenizers stay well inside them (Gemma: 3-fold, a
// Metaspace pre-tokenizer: 6-fold + 3 bytes, Llama 3 / Qwen 3: NFC 3-fold and ByteLevel 2-fold).
// The model stage needs no rule: BPE emits at most one token per byte of a word (a character, a
// byte-fallback byte or an <unk>), so with both limits a prompt of n bytes gives at most
// about 16 * (16 n + 64) + 64 tokens per piece between added tokens, whatever tokenizer.json says.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kiln::tokenizer {

inline constexpr uint64_t kMaxStageGrowthFactor = 16;
inline constexpr uint64_t kMaxStageGrowthConstantBytes = 64;

struct GrowthBound {
  uint64_t factor = 1;          // output bytes per input byte
  uint64_t constant_bytes = 0;  // added once per piece (a prefix)

  // This bound followed by `next` (saturating: a long chain cannot wrap around).
  GrowthBound Then(const GrowthBound& next) const;
  // The bound applied to `input_bytes` (saturating).
  uint64_t MaxOutputBytes(uint64_t input_bytes) const;
};

// One step of a stage, as its rule is written in the tokenizer file.
struct StepGrowth {
  std::string rule;  // e.g. "Replace \" \" with a 100-byte string"
  GrowthBound bound;
};

// The composition of `steps` in order.
GrowthBound ComposeGrowth(const std::vector<StepGrowth>& steps);

// kMalformed when the composed bound exceeds the limits. The message names the stage, the
// factor and constant it reaches, what that means for a 1000-byte input, and the rules that
// cause it (the one step that alone exceeds a limit, else every step that grows text).
Status CheckStageGrowth(std::string_view stage, const std::vector<StepGrowth>& steps);

// `text` quoted for a message: short strings in full (escaped), long ones by their length.
std::string QuoteRuleText(std::string_view text);

}  // namespace kiln::tokenizer
