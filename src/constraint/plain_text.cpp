#include "constraint/plain_text.h"

#include <algorithm>
#include <array>
#include <span>
#include <vector>

#include "constraint/utf8_ranges.h"

namespace kiln::constraint {
namespace {

constexpr int32_t kNoOutcomeYet = -5;

// Every plain character's encoding, as products of per-byte ranges.
const std::vector<Utf8Sequence>& PlainSequences() {
  static const std::vector<Utf8Sequence> sequences =
      Utf8Sequences(NormalizeRanges({{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x7E}, {0x80, 0x10FFFF}}, false));
  return sequences;
}

// The state that every byte string of `ranges` leads to from `state`, kMixedSuccessor when they
// disagree. Bytes leading to a state already followed add nothing new, so only the distinct
// successors of each position are followed (the recognizer fills a row a class at a time, so the
// rest are table loads).
int32_t Outcome(Recognizer& recognizer, int32_t state, std::span<const ByteRange> ranges, int* steps_left) {
  if (ranges.empty() || state == Recognizer::kDead) return state;
  int32_t outcome = kNoOutcomeYet;
  std::array<int32_t, 8> followed;
  size_t num_followed = 0;
  for (int b = ranges[0].first; b <= ranges[0].last; ++b) {
    if (--*steps_left < 0) return kMixedSuccessor;
    const int32_t next = recognizer.Next(state, static_cast<uint8_t>(b));
    if (std::find(followed.begin(), followed.begin() + num_followed, next) != followed.begin() + num_followed) continue;
    if (num_followed == followed.size()) return kMixedSuccessor;
    followed[num_followed++] = next;
    const int32_t end = Outcome(recognizer, next, ranges.subspan(1), steps_left);
    if (end == kMixedSuccessor || (outcome != kNoOutcomeYet && end != outcome)) return kMixedSuccessor;
    outcome = end;
  }
  return outcome;
}

}  // namespace

int PlainCharCount(std::string_view bytes) {
  int chars = 0;
  for (size_t i = 0; i < bytes.size(); ++chars) {
    if (chars == kMaxPlainChars) return 0;
    const auto lead = static_cast<uint8_t>(bytes[i]);
    if (lead < 0x80) {
      if (lead < 0x20 || lead == '"' || lead == '\\' || lead == 0x7F) return 0;
      ++i;
      continue;
    }
    const size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 0;
    if (length == 0 || lead > 0xF4 || i + length > bytes.size()) return 0;
    uint32_t cp = lead & (0xFF >> (length + 1));
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<uint8_t>(bytes[i + k]);
      if ((next & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not characters.
    const uint32_t smallest = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
    if (cp < smallest || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += length;
  }
  return chars;
}

int32_t PlainSuccessor(Recognizer& recognizer, int32_t state) {
  int steps_left = kMaxSuccessorSteps;
  int32_t outcome = kNoOutcomeYet;
  for (const Utf8Sequence& sequence : PlainSequences()) {
    const int32_t next = Outcome(recognizer, state, sequence, &steps_left);
    if (next == kMixedSuccessor || (outcome != kNoOutcomeYet && next != outcome)) return kMixedSuccessor;
    outcome = next;
  }
  return outcome;
}

}  // namespace kiln::constraint
