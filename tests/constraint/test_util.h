// Helpers shared by the constraint tests.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "constraint/constraint.h"
#include "constraint/recognizer.h"
#include "constraint/vocabulary.h"

namespace kiln::constraint::testing {

// Compiles or fails the test with the error message.
inline std::shared_ptr<const Grammar> MustCompile(Result<std::shared_ptr<const Grammar>> result) {
  EXPECT_TRUE(result.has_value()) << (result.has_value() ? "" : result.error().message());
  return result.has_value() ? result.value() : nullptr;
}

// The error message of a compile that must fail ("" and a test failure when it succeeds).
inline std::string ErrorOf(const Result<std::shared_ptr<const Grammar>>& result) {
  EXPECT_FALSE(result.has_value()) << "expected a compile error";
  return result.has_value() ? "" : result.error().message();
}

inline bool Matches(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  return g != nullptr && GrammarMatches(*g, text);
}

inline int32_t AfterBytes(Recognizer& rec, std::string_view bytes) {
  int32_t s = rec.initial_state();
  for (char ch : bytes) s = s == Recognizer::kDead ? s : rec.Next(s, static_cast<uint8_t>(ch));
  return s;
}

// The mask by brute force, independent of the matcher's trie walk and plain-token shortcut:
// token t is allowed iff reading its bytes after `prefix` keeps a fresh recognizer alive; eos
// iff the prefix is a sentence.
inline std::vector<uint64_t> ReferenceMask(const std::shared_ptr<const Grammar>& grammar,
                                           const TokenVocabulary& vocab, std::string_view prefix) {
  Recognizer rec(grammar);
  const int32_t state = AfterBytes(rec, prefix);
  std::vector<uint64_t> mask(vocab.mask_words());
  if (state == Recognizer::kDead) return mask;
  for (size_t id = 0; id < vocab.size(); ++id) {
    const std::string_view bytes = vocab.TokenBytes(static_cast<TokenId>(id));
    if (bytes.empty()) continue;
    int32_t s = state;
    for (char ch : bytes) s = s == Recognizer::kDead ? s : rec.Next(s, static_cast<uint8_t>(ch));
    if (s != Recognizer::kDead) mask[id / 64] |= uint64_t{1} << (id % 64);
  }
  if (rec.IsAccepting(state)) {
    for (TokenId id : vocab.eos_ids()) mask[id / 64] |= uint64_t{1} << (id % 64);
  }
  return mask;
}

// The tokens where two masks differ, for failure messages.
inline std::string Differences(const std::vector<uint64_t>& got, const std::vector<uint64_t>& want,
                               const TokenVocabulary& vocab) {
  std::string out;
  for (size_t id = 0; id < vocab.size() && out.size() < 2000; ++id) {
    const bool g = (got[id / 64] >> (id % 64)) & 1, w = (want[id / 64] >> (id % 64)) & 1;
    if (g != w) {
      out += std::string(g ? " extra" : " missing") + " \"" + std::string(vocab.TokenBytes(static_cast<TokenId>(id))) + "\"";
    }
  }
  return out;
}

}  // namespace kiln::constraint::testing
