#include "constraint/utf8_ranges.h"

#include <algorithm>

namespace kiln::constraint {
namespace {

constexpr uint32_t kMaxCodepoint = 0x10FFFF;

int EncodedLength(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

void Encode(uint32_t cp, uint8_t* out) {
  switch (EncodedLength(cp)) {
    case 1: out[0] = static_cast<uint8_t>(cp); break;
    case 2:
      out[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
      out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
      break;
    case 3:
      out[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
      out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
      out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
      break;
    default:
      out[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
      out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
      out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
      out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  }
}

void Split(uint32_t lo, uint32_t hi, std::vector<Utf8Sequence>* out) {
  if (lo > hi) return;
  // Different encoded lengths: cut at the length boundary.
  for (uint32_t boundary : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= boundary && hi > boundary) {
      Split(lo, boundary, out);
      Split(boundary + 1, hi, out);
      return;
    }
  }
  const int length = EncodedLength(lo);
  // Cut where the low continuation bytes do not span their full range, so that every piece is
  // a product of independent per-byte ranges.
  for (int i = 1; i < length; ++i) {
    const uint32_t mask = (1u << (6 * i)) - 1;
    if ((lo & ~mask) != (hi & ~mask)) {
      if ((lo & mask) != 0) {
        Split(lo, lo | mask, out);
        Split((lo | mask) + 1, hi, out);
        return;
      }
      if ((hi & mask) != mask) {
        Split(lo, (hi & ~mask) - 1, out);
        Split(hi & ~mask, hi, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  Encode(lo, a);
  Encode(hi, b);
  Utf8Sequence seq;
  for (int i = 0; i < length; ++i) seq.push_back({a[i], b[i]});
  out->push_back(std::move(seq));
}

}  // namespace

std::vector<CodepointRange> NormalizeRanges(std::vector<CodepointRange> ranges, bool negated) {
  for (CodepointRange& r : ranges) {
    if (r.first > r.last) std::swap(r.first, r.last);
    r.last = std::min(r.last, kMaxCodepoint);
  }
  std::erase_if(ranges, [](const CodepointRange& r) { return r.first > kMaxCodepoint; });
  std::sort(ranges.begin(), ranges.end(),
            [](const CodepointRange& x, const CodepointRange& y) { return x.first < y.first; });
  std::vector<CodepointRange> merged;
  for (const CodepointRange& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().last + 1) {
      merged.back().last = std::max(merged.back().last, r.last);
    } else {
      merged.push_back(r);
    }
  }
  if (negated) {
    std::vector<CodepointRange> complement;
    uint32_t next = 0;
    for (const CodepointRange& r : merged) {
      if (r.first > next) complement.push_back({next, r.first - 1});
      next = r.last + 1;
    }
    if (next <= kMaxCodepoint) complement.push_back({next, kMaxCodepoint});
    merged = std::move(complement);
  }
  // Surrogates are not characters; UTF-8 never encodes them.
  std::vector<CodepointRange> result;
  for (const CodepointRange& r : merged) {
    if (r.last < 0xD800 || r.first > 0xDFFF) {
      result.push_back(r);
      continue;
    }
    if (r.first < 0xD800) result.push_back({r.first, 0xD7FF});
    if (r.last > 0xDFFF) result.push_back({0xE000, r.last});
  }
  return result;
}

std::vector<Utf8Sequence> Utf8Sequences(const std::vector<CodepointRange>& normalized) {
  std::vector<Utf8Sequence> out;
  for (const CodepointRange& r : normalized) Split(r.first, r.last, &out);
  return out;
}

}  // namespace kiln::constraint
