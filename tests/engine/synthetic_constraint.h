// An output constraint over a made-up vocabulary, for the random-weight fixtures (which have no
// tokenizer): token i spells i in base 8 over "ab01xy{}" (at most 3 characters), tokens 0 and 2
// are never allowed, token 1 is the end of sequence.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "constraint/constraint.h"
#include "constraint/vocabulary.h"
#include "engine/output_constraint.h"

namespace kiln::testing {

inline std::string SyntheticTokenText(int64_t id) {
  static constexpr char kAlphabet[] = "ab01xy{}";
  std::string text;
  for (int64_t n = id; text.empty() || (n > 0 && text.size() < 3); n /= 8) text += kAlphabet[n % 8];
  return text;
}

inline ConstraintSpec SyntheticRegexConstraint(int64_t vocab, const std::string& regex) {
  std::vector<std::optional<std::string>> bytes;
  for (int64_t id = 0; id < vocab; ++id) {
    bytes.push_back(id == 0 || id == 2 || id == 1 ? std::nullopt : std::optional<std::string>(SyntheticTokenText(id)));
  }
  const std::vector<int32_t> eos = {1};
  auto vocabulary = constraint::TokenVocabulary::FromTokenBytes(bytes, eos);
  EXPECT_TRUE(vocabulary.has_value()) << vocabulary.error().ToString();
  auto grammar = constraint::CompileRegex(regex);
  EXPECT_TRUE(grammar.has_value()) << grammar.error().ToString();
  if (!vocabulary.has_value() || !grammar.has_value()) return {};
  return ConstraintSpec{*grammar, *vocabulary};
}

}  // namespace kiln::testing
