#include "tokenizer/pre_tokenizer.h"

#include <algorithm>

#include "tokenizer/byte_level.h"

namespace kiln::tokenizer {
namespace {

struct Segment {
  size_t begin, end;
  bool is_match;
};

// Cuts `text` into matched and unmatched segments (non-empty, in order).
std::vector<Segment> FindSegments(std::string_view text, const PreTokenizerStep& step) {
  std::vector<Segment> segments;
  size_t last = 0;
  auto on_match = [&](size_t begin, size_t end) {
    if (begin > last) segments.push_back({last, begin, false});
    segments.push_back({begin, end, true});
    last = end;
  };
  if (step.regex.has_value()) {
    step.regex->ForEachMatch(text, on_match);
  } else if (!step.literal.empty()) {
    for (size_t hit = text.find(step.literal); hit != std::string_view::npos;
         hit = text.find(step.literal, hit + step.literal.size())) {
      on_match(hit, hit + step.literal.size());
    }
  }
  if (last < text.size()) segments.push_back({last, text.size(), false});
  if (step.invert) {
    for (Segment& s : segments) s.is_match = !s.is_match;
  }
  return segments;
}

// Applies a split behavior (HF SplitDelimiterBehavior, same folding rules).
std::vector<Segment> ApplyBehavior(std::vector<Segment> segments, SplitBehavior behavior) {
  std::vector<Segment> out;
  out.reserve(segments.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return segments;
    case SplitBehavior::kRemoved:
      for (const Segment& s : segments) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return std::vector<Segment>(out.rbegin(), out.rend());
    case SplitBehavior::kContiguous:
      for (size_t i = 0; i < segments.size(); ++i) {
        if (i > 0 && segments[i].is_match == previous_match) {
          out.back().end = segments[i].end;
        } else {
          out.push_back(segments[i]);
        }
        previous_match = segments[i].is_match;
      }
      return out;
  }
  return segments;
}

void ApplyStep(const PreTokenizerStep& step, std::string_view word, bool is_first,
               std::vector<std::string>* out) {
  switch (step.kind) {
    case PreTokenizerKind::kSplit:
      for (const Segment& s : ApplyBehavior(FindSegments(word, step), step.behavior)) {
        out->emplace_back(word.substr(s.begin, s.end - s.begin));
      }
      return;
    case PreTokenizerKind::kByteLevel: {
      std::string prefixed;
      if (step.add_prefix_space && (word.empty() || word[0] != ' ')) {
        prefixed.assign(1, ' ');
        prefixed.append(word);
        word = prefixed;
      }
      if (!step.regex.has_value()) {
        out->push_back(ByteLevelEncode(word));
        return;
      }
      step.regex->ForEachMatch(word, [&](size_t begin, size_t end) {
        out->push_back(ByteLevelEncode(word.substr(begin, end - begin)));
      });
      // The GPT-2 pattern matches every character, so there are no gaps to keep.
      return;
    }
    case PreTokenizerKind::kMetaspace: {
      std::string replaced;
      replaced.reserve(word.size() + 3);
      const bool prepend = step.prepend_scheme == PrependScheme::kAlways ||
                           (step.prepend_scheme == PrependScheme::kFirst && is_first);
      if (prepend && word.substr(0, step.replacement.size()) != step.replacement && !word.empty()) {
        replaced = step.replacement;
      }
      for (char c : word) {
        if (c == ' ') {
          replaced += step.replacement;
        } else {
          replaced += c;
        }
      }
      if (!step.split) {
        out->push_back(std::move(replaced));
        return;
      }
      PreTokenizerStep split;
      split.literal = step.replacement;
      split.behavior = SplitBehavior::kMergedWithNext;
      ApplyStep(split, replaced, is_first, out);
      return;
    }
  }
}

}  // namespace

void PreTokenizer::Apply(std::string_view text, bool is_first_segment, std::vector<std::string>* words) const {
  if (steps.empty()) {
    words->emplace_back(text);
    return;
  }
  std::vector<std::string> current{std::string(text)};
  std::vector<std::string> next;
  for (const PreTokenizerStep& step : steps) {
    next.clear();
    for (size_t i = 0; i < current.size(); ++i) ApplyStep(step, current[i], is_first_segment && i == 0, &next);
    current.swap(next);
  }
  for (std::string& w : current) {
    if (!w.empty()) words->push_back(std::move(w));
  }
}

bool PreTokenizer::HasByteLevel() const {
  for (const PreTokenizerStep& step : steps) {
    if (step.kind == PreTokenizerKind::kByteLevel) return true;
  }
  return false;
}

std::vector<StepGrowth> PreTokenizer::Growth() const {
  std::vector<StepGrowth> out;
  out.reserve(steps.size());
  // A step writing at most a * m + b bytes for each word of m >= 1 bytes writes at most
  // (a + b) * n + b for n input bytes in all (at most max(1, n) words).
  auto per_word = [](uint64_t a, uint64_t b) { return GrowthBound{a + b, b}; };
  for (const PreTokenizerStep& step : steps) {
    switch (step.kind) {
      case PreTokenizerKind::kSplit:
        out.push_back({"Split " + (step.regex.has_value() ? "Regex " + QuoteRuleText(step.regex->pattern())
                                                          : QuoteRuleText(step.literal)),
                       {1, 0}});
        break;
      case PreTokenizerKind::kByteLevel:
        // Every byte maps to a character below U+0144: 1 or 2 bytes of UTF-8.
        out.push_back({step.add_prefix_space ? "ByteLevel with add_prefix_space" : "ByteLevel",
                       per_word(2, step.add_prefix_space ? 2 : 0)});
        break;
      case PreTokenizerKind::kMetaspace: {
        const uint64_t r = step.replacement.size();
        const bool prepends = step.prepend_scheme != PrependScheme::kNever;
        out.push_back({"Metaspace with replacement " + QuoteRuleText(step.replacement),
                       per_word(std::max<uint64_t>(1, r), prepends ? r : 0)});
        break;
      }
    }
  }
  return out;
}

}  // namespace kiln::tokenizer
