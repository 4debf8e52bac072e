// Plain text: the characters most of a vocabulary is made of, and the grammar contexts that take
// all of them alike. It lets a mask skip the trie walk for most tokens (matcher.h).
//
//   int n = PlainCharCount(" weather");                 // 8: a plain token of 8 characters
//   int32_t next = PlainSuccessor(recognizer, state);  // where every plain character leads
//
// A plain character is a code point in [0x20, 0x7E] other than '"' and '\\', or any code point
// from 0x80 up (surrogates excluded): what a JSON string, a regex `.*` or a GBNF `[^"]*` takes
// without escaping. A plain token is 1 to kMaxPlainChars plain characters in valid UTF-8; in the
// Gemma 4 vocabulary that is 260,507 of 262,144 tokens (the rest hold quotes, backslashes,
// control bytes, partial UTF-8 as byte-fallback tokens, or more than 16 characters).
//
// Inside a string most grammars send every plain character to the same state: a JSON string body
// loops to itself, a string with maxLength n moves to the state that counts one more character.
// When PlainSuccessor finds one such state, a plain token of k characters is allowed exactly when
// k steps along that chain stay alive, and its bytes never need reading: the vocabulary keeps,
// per k, the set of plain tokens of at most k characters (TokenVocabulary::PlainTokenMask).
//
// PlainSuccessor is exact: it reads every byte of every plain character's encoding (ranges of
// UTF-8, utf8_ranges.h) through the recognizer, following each distinct intermediate state once,
// and answers kMixedSuccessor as soon as two characters part ways. Its work is bounded
// (kMaxSuccessorSteps transitions); past it the answer is kMixedSuccessor, which only means "walk
// the trie", never a wrong mask.
#pragma once

#include <cstdint>
#include <string_view>

#include "constraint/recognizer.h"

namespace kiln::constraint {

inline constexpr int kMaxPlainChars = 16;
// Plain characters do not all lead to one state (or the check ran out of steps).
inline constexpr int32_t kMixedSuccessor = -4;
inline constexpr int kMaxSuccessorSteps = 4096;

// The number of characters of a plain token (1..kMaxPlainChars), or 0 for any other byte string.
int PlainCharCount(std::string_view bytes);

// The one state that every plain character leads to from `state` (Recognizer::kDead when every
// plain character is refused), or kMixedSuccessor. `state` must not be kDead. Fills transitions
// of `recognizer` on the way.
int32_t PlainSuccessor(Recognizer& recognizer, int32_t state);

}  // namespace kiln::constraint
