// Matcher: one sequence's position in a grammar, and the tokens it allows next.
//
//   Matcher matcher(grammar, vocab);                // per sequence; grammar and vocab shared
//   std::vector<uint64_t> mask(vocab->mask_words());
//   while (!matcher.IsTerminated()) {
//     TRY(matcher.FillMask(mask));                  // bit t of mask[t / 64]: token t allowed
//     TokenId t = Sample(logits, mask);             // the sampler masks before sampling
//     TRY(matcher.Accept(t));
//   }
//
// FillMask splits the vocabulary in two (plain_text.h). Plain tokens (1-16 characters without
// quotes, backslashes or control bytes: 99.4% of Gemma 4's vocabulary) are decided without
// reading their bytes when every plain character leads the current state to one same state:
// following that chain of successors k steps decides every plain token of k characters at once,
// so the mask starts as a copy of the vocabulary's "plain tokens of at most k characters" mask
// (inside a JSON string, k = 16: all of them; with maxLength, the characters still allowed).
// The chain is computed once per recognizer state and remembered. The other tokens (1,620 in
// Gemma 4) are found by walking their trie. Where plain characters part ways (literals, numbers,
// patterns) the walk covers the whole vocabulary trie, and there a rejected prefix prunes its
// subtree at once.
//
// The walk follows each token byte by byte through the recognizer's cached transitions, skipping
// a subtree as soon as its prefix is rejected, and accepting a subtree whole when the state loops
// on every byte below it. The finished mask is cached per recognizer state, so states the output
// returns to cost a copy. The end-of-sequence ids are allowed exactly when the output so far is a
// complete sentence of the grammar.
//
// Accept checks the token against the grammar (a token FillMask would not allow is refused with
// kInvalidArgument and the state is unchanged), then records the new state. Accepting an eos id
// terminates the matcher. Rollback(n) undoes the last n accepted tokens (for speculative
// decoding): the matcher keeps the state after every token, so it costs O(n).
//
// Not thread-safe; one Matcher per sequence. Grammar and TokenVocabulary are shared read-only.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "constraint/grammar.h"
#include "constraint/plain_text.h"
#include "constraint/recognizer.h"
#include "constraint/vocabulary.h"

namespace kiln::constraint {

class Matcher {
 public:
  static constexpr size_t kMaxCachedMasks = 64;

  Matcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocab);

  // kInvalidArgument when mask.size() != vocab->mask_words(). After termination (or when the
  // grammar can match nothing more and is not accepting) the mask is all zeros.
  Status FillMask(std::span<uint64_t> mask);
  // kInvalidArgument for a token that the current mask does not allow (unchanged state).
  Status Accept(TokenId token);
  // Advances over raw bytes (e.g. text forced into the output outside sampling); counts as one
  // accepted token for Rollback.
  Status AcceptBytes(std::string_view bytes);
  // kOutOfRange when n exceeds the number of accepted tokens.
  Status Rollback(size_t num_tokens);

  // The output so far is a complete sentence (end-of-sequence is allowed).
  bool IsAccepting() const;
  // An end-of-sequence token was accepted.
  bool IsTerminated() const { return states_.back() == kTerminated; }
  // Accepting and no byte may follow: the sampler can only end the sequence.
  bool MustEnd() const;
  size_t num_accepted_tokens() const { return states_.size() - 1; }
  const TokenVocabulary& vocabulary() const { return *vocab_; }

 private:
  static constexpr int32_t kTerminated = -3;
  static constexpr int8_t kLevelsUnknown = -1;
  static constexpr int8_t kLevelsMixed = -2;
  static constexpr int32_t kSuccessorUnknown = -6;
  int32_t Walk(int32_t state, std::string_view bytes);
  // Sets the bits of the trie's tokens that `state` allows.
  void WalkTrie(const TokenTrie& trie, int32_t state, std::span<uint64_t> mask);
  // How many plain characters in a row `state` allows, all alike (0..kMaxPlainChars, capped), or
  // kLevelsMixed when plain characters part ways within kMaxPlainChars steps.
  int PlainLevels(int32_t state);
  int32_t CachedPlainSuccessor(int32_t state);

  Recognizer recognizer_;
  std::shared_ptr<const TokenVocabulary> vocab_;
  std::vector<int32_t> states_;  // states_[0] initial; one more per accepted token
  std::unordered_map<int32_t, std::vector<uint64_t>> mask_cache_;
  std::vector<int32_t> walk_states_;  // per trie depth during FillMask
  // Per recognizer state, filled on first use.
  std::vector<int32_t> plain_successor_;
  std::vector<int8_t> plain_levels_;
  std::vector<int32_t> chain_;  // scratch for PlainLevels
};

}  // namespace kiln::constraint
