#include "tokenizer/normalizer.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tokenizer/utf8.h"

namespace kiln::tokenizer {
namespace {

struct CombiningClass {
  uint32_t code_point;
  uint8_t combining_class;
};
struct Decomposition {
  uint32_t code_point, first, second;  // second == 0: singleton
};
struct Composition {
  uint32_t first, second, composite;
};
#include "tokenizer/unicode_tables.inc"

// Hangul syllables compose and decompose algorithmically (Unicode §3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

uint8_t CombiningClassOf(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* end = std::end(kCombiningClasses);
  const auto* it = std::lower_bound(std::begin(kCombiningClasses), end, cp,
                                    [](const CombiningClass& e, char32_t c) { return e.code_point < c; });
  return (it != end && it->code_point == cp) ? it->combining_class : 0;
}

void DecomposeInto(char32_t cp, std::u32string* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s_index = cp - kSBase;
    out->push_back(kLBase + s_index / kNCount);
    out->push_back(kVBase + (s_index % kNCount) / kTCount);
    if (s_index % kTCount != 0) out->push_back(kTBase + s_index % kTCount);
    return;
  }
  const auto* end = std::end(kDecompositions);
  const auto* it = std::lower_bound(std::begin(kDecompositions), end, cp,
                                    [](const Decomposition& e, char32_t c) { return e.code_point < c; });
  if (cp < 0xC0 || it == end || it->code_point != cp) {
    out->push_back(cp);
    return;
  }
  DecomposeInto(it->first, out);  // depth is bounded by the Unicode data (at most 4)
  if (it->second != 0) DecomposeInto(it->second, out);
}

char32_t ComposePair(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount) {
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  }
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 &&
      second > kTBase && second < kTBase + kTCount) {
    return first + (second - kTBase);
  }
  const auto* end = std::end(kCompositions);
  const auto* it = std::lower_bound(std::begin(kCompositions), end, std::make_pair(first, second),
                                    [](const Composition& e, const std::pair<char32_t, char32_t>& k) {
                                      return e.first != k.first ? e.first < k.first : e.second < k.second;
                                    });
  return (it != end && it->first == first && it->second == second) ? it->composite : 0;
}

// Code points that NFC/NFD may change or reorder: combining marks, decomposable characters,
// second halves of compositions and Hangul jamo. Text without any of them is already normalized
// (the quick check that keeps CJK and emoji text on the fast path).
const std::vector<uint64_t>& UnstableCodePoints() {
  static const std::vector<uint64_t> bits = [] {
    std::vector<uint64_t> b(0x110000 / 64, 0);
    auto mark = [&](uint32_t cp) { b[cp / 64] |= uint64_t{1} << (cp % 64); };
    for (const auto& e : kCombiningClasses) mark(e.code_point);
    for (const auto& e : kDecompositions) mark(e.code_point);
    for (const auto& e : kCompositions) mark(e.second);
    for (uint32_t cp = 0x1100; cp < 0x1200; ++cp) mark(cp);
    for (uint32_t cp = kSBase; cp < kSBase + kSCount; ++cp) mark(cp);
    return b;
  }();
  return bits;
}

bool NeedsNormalization(std::string_view text) {
  const std::vector<uint64_t>& unstable = UnstableCodePoints();
  size_t pos = 0;
  while (pos < text.size()) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    if (lead < 0xC3) {  // below U+00C0 nothing decomposes
      ++pos;
      continue;
    }
    const size_t length = Utf8SequenceLength(text, pos);
    if (length == 0) return true;
    const char32_t cp = DecodeUtf8At(text, pos, length);
    if ((unstable[cp / 64] >> (cp % 64)) & 1) return true;
    pos += length;
  }
  return false;
}

std::u32string Decompose(std::string_view text) {
  std::u32string cps;
  cps.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t length = Utf8SequenceLength(text, pos);
    if (length == 0) {  // input is sanitized; keep going defensively
      cps.push_back(kReplacementChar);
      ++pos;
      continue;
    }
    DecomposeInto(DecodeUtf8At(text, pos, length), &cps);
    pos += length;
  }
  // Canonical ordering: stable-sort each run of non-starters by combining class.
  size_t i = 0;
  while (i < cps.size()) {
    if (CombiningClassOf(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && CombiningClassOf(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](char32_t a, char32_t b) { return CombiningClassOf(a) < CombiningClassOf(b); });
    i = j;
  }
  return cps;
}

std::string Encode(const std::u32string& cps) {
  std::string out;
  out.reserve(cps.size() * 2);
  for (char32_t cp : cps) AppendUtf8(cp, &out);
  return out;
}

}  // namespace

bool IsUnicodeWhitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

std::string NormalizeNfd(std::string_view text) {
  if (!NeedsNormalization(text)) return std::string(text);
  return Encode(Decompose(text));
}

std::string NormalizeNfc(std::string_view text) {
  if (!NeedsNormalization(text)) return std::string(text);
  std::u32string cps = Decompose(text);
  // Canonical composition (Unicode §3.11): a character composes with the last starter unless a
  // character between them has a combining class >= its own (blocked).
  size_t starter = std::u32string::npos;
  int last_class = -1;
  size_t out = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t cp = cps[i];
    const int cls = CombiningClassOf(cp);
    if (starter != std::u32string::npos && (last_class < cls || (last_class == 0 && out == starter + 1))) {
      const char32_t composite = ComposePair(cps[starter], cp);
      if (composite != 0) {
        cps[starter] = composite;
        continue;
      }
    }
    if (cls == 0) {
      starter = out;
      last_class = 0;
    } else {
      last_class = cls;
    }
    cps[out++] = cp;
  }
  cps.resize(out);
  return Encode(cps);
}

std::string Normalizer::Apply(std::string_view text) const {
  std::string current(text);
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerKind::kNfc:
        current = NormalizeNfc(current);
        break;
      case NormalizerKind::kNfd:
        current = NormalizeNfd(current);
        break;
      case NormalizerKind::kReplace: {
        if (step.pattern.empty()) break;
        std::string out;
        out.reserve(current.size() + current.size() / 2);
        size_t pos = 0;
        for (size_t hit; (hit = current.find(step.pattern, pos)) != std::string::npos;
             pos = hit + step.pattern.size()) {
          out.append(current, pos, hit - pos);
          out.append(step.content);
        }
        out.append(current, pos, std::string::npos);
        current = std::move(out);
        break;
      }
      case NormalizerKind::kPrepend:
        if (!current.empty()) current = step.content + current;
        break;
      case NormalizerKind::kLowercase:
        for (char& c : current) {
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        break;
      case NormalizerKind::kStrip: {
        size_t begin = 0, end = current.size();
        if (step.strip_left) {
          while (begin < end) {
            const size_t length = Utf8SequenceLength(current, begin);
            if (length == 0 || !IsUnicodeWhitespace(DecodeUtf8At(current, begin, length))) break;
            begin += length;
          }
        }
        if (step.strip_right) {
          while (end > begin) {
            size_t start = end - 1;
            while (start > begin && (static_cast<unsigned char>(current[start]) & 0xC0) == 0x80) --start;
            const size_t length = Utf8SequenceLength(current, start);
            if (length == 0 || !IsUnicodeWhitespace(DecodeUtf8At(current, start, length))) break;
            end = start;
          }
        }
        current = current.substr(begin, end - begin);
        break;
      }
    }
  }
  return current;
}

std::vector<StepGrowth> Normalizer::Growth() const {
  std::vector<StepGrowth> out;
  out.reserve(steps.size());
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerKind::kNfc:
        out.push_back({"NFC", {kMaxNormalizationFactor, 0}});
        break;
      case NormalizerKind::kNfd:
        out.push_back({"NFD", {kMaxNormalizationFactor, 0}});
        break;
      case NormalizerKind::kReplace: {
        // Each match of p bytes becomes c bytes: at most ceil(c / p) bytes per input byte.
        const uint64_t p = step.pattern.size(), c = step.content.size();
        const uint64_t factor = p == 0 ? 1 : std::max<uint64_t>(1, (c + p - 1) / p);
        out.push_back({"Replace " + QuoteRuleText(step.pattern) + " with " + QuoteRuleText(step.content), {factor, 0}});
        break;
      }
      case NormalizerKind::kPrepend:
        out.push_back({"Prepend " + QuoteRuleText(step.content), {1, step.content.size()}});
        break;
      case NormalizerKind::kLowercase:
        out.push_back({"Lowercase", {1, 0}});
        break;
      case NormalizerKind::kStrip:
        out.push_back({"Strip", {1, 0}});
        break;
    }
  }
  return out;
}

}  // namespace kiln::tokenizer
