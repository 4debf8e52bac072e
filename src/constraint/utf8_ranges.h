// Code point sets as UTF-8 byte sequences: a class like [^"\\] must match every byte sequence that
// encodes one allowed code point, and nothing else (no surrogates, no overlong forms).
//
//   std::vector<Utf8Sequence> seqs = Utf8Sequences({{0x80, 0x10FFFF}});
//   // each Utf8Sequence is 1-4 byte ranges; a code point matches iff its encoding matches one.
//
// The split follows the structure of UTF-8: a range is cut at the encoding-length boundaries
// (0x7F, 0x7FF, 0xFFFF), around the surrogates, and then wherever lo and hi differ in a
// continuation byte so that each piece is a product of per-byte ranges.
#pragma once

#include <cstdint>
#include <vector>

#include "constraint/grammar.h"

namespace kiln::constraint {

struct ByteRange {
  uint8_t first = 0, last = 0;  // inclusive
};
using Utf8Sequence = std::vector<ByteRange>;

// Sorted, merged set of ranges within [0, 0x10FFFF] (complemented when `negated`), surrogates
// removed.
std::vector<CodepointRange> NormalizeRanges(std::vector<CodepointRange> ranges, bool negated);

std::vector<Utf8Sequence> Utf8Sequences(const std::vector<CodepointRange>& normalized);

}  // namespace kiln::constraint
