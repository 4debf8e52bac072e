// TokenVocabulary: the bytes of every token id, arranged as a byte trie for mask computation.
//
//   TRY_ASSIGN(auto vocab, TokenVocabulary::FromTokenizer(tokenizer, model_tokenizer.stop_token_ids));
//   // or, for tests: TokenVocabulary::FromTokenBytes({"a", "b", std::nullopt, ...}, /*eos_ids=*/{2});
//
// Each id maps to the bytes it adds to the output: the decoder's per-token bytes (so "▁the" is
// " the", a byte-fallback token "<0x41>" is the single byte 0x41, a byte-level "Ġ" is a space).
// Special tokens (control tokens) are never allowed, with one exception: the end-of-sequence ids
// given here are allowed exactly when the grammar is in an accepting state. Tokens that decode to
// no bytes are never allowed (they would let a constrained model stall forever).
//
// Two tries (TokenTrie) hold the tokens: one of all of them, one of those that are not plain
// text (plain_text.h). The plain tokens are also kept as one mask per character count, so a
// state that takes all plain characters alike copies a mask instead of walking 600K nodes.
//
// Built once per tokenizer; immutable afterwards and safe to share between threads (hold it by
// shared_ptr; every Matcher keeps a reference).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "constraint/plain_text.h"
#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace kiln::constraint {

using TokenId = int32_t;

// A set of tokens as a byte trie, in preorder: node i has a byte, a depth (1 = first byte of a
// token), the index one past its subtree, and the ids of tokens whose bytes end at it. Walking it
// in order with a state per depth, a rejected node skips its whole subtree.
struct TokenTrie {
  using ByteSet = std::array<uint64_t, 4>;

  size_t num_nodes() const { return node_byte.size(); }

  std::vector<uint8_t> node_byte;
  std::vector<uint16_t> node_depth;
  std::vector<uint32_t> node_subtree_end;
  // Tokens ending at node i: token_ids[node_tokens_begin[i] .. node_tokens_begin[i+1]).
  std::vector<uint32_t> node_tokens_begin;  // num_nodes + 1 entries
  std::vector<TokenId> token_ids;
  // The bytes that occur strictly below node i (in any token that extends it), as a 256-bit set:
  // byte_sets[node_below_set[i]]. Lets the walk accept a whole subtree at once when the state
  // loops on all of them.
  std::vector<uint32_t> node_below_set;
  std::vector<ByteSet> byte_sets;
  size_t max_depth = 0;
};

class TokenVocabulary {
 public:
  // kInvalidArgument when the decoder cannot give per-token bytes or an eos id is out of range.
  static Result<std::shared_ptr<const TokenVocabulary>> FromTokenizer(
      const tokenizer::Tokenizer& tokenizer, std::span<const TokenId> eos_ids);
  // bytes[id] = the token's output bytes, nullopt for a token that is never allowed.
  static Result<std::shared_ptr<const TokenVocabulary>> FromTokenBytes(
      const std::vector<std::optional<std::string>>& bytes, std::span<const TokenId> eos_ids);

  size_t size() const { return num_tokens_; }
  size_t mask_words() const { return (num_tokens_ + 63) / 64; }
  bool IsEos(TokenId id) const;
  const std::vector<TokenId>& eos_ids() const { return eos_ids_; }
  // The token's output bytes (empty for never-allowed and eos tokens).
  std::string_view TokenBytes(TokenId id) const;

  // Every allowed token (mask words of a state where plain characters part ways).
  const TokenTrie& trie() const { return trie_; }
  // The tokens that are not plain (plain_text.h): quotes, backslashes, control bytes, partial
  // UTF-8, more than kMaxPlainChars characters. 1,620 of Gemma 4's 262,144 tokens.
  const TokenTrie& rest_trie() const { return rest_trie_; }
  size_t num_nodes() const { return trie_.num_nodes(); }
  // The plain tokens of at most `max_chars` characters (1..kMaxPlainChars), mask_words() words.
  std::span<const uint64_t> PlainTokenMask(int max_chars) const {
    return std::span<const uint64_t>(plain_masks_).subspan((max_chars - 1) * mask_words(), mask_words());
  }

 private:
  size_t num_tokens_ = 0;
  std::vector<TokenId> eos_ids_;
  std::vector<uint8_t> is_eos_;
  std::vector<std::string> bytes_;
  TokenTrie trie_;
  TokenTrie rest_trie_;
  std::vector<uint64_t> plain_masks_;  // kMaxPlainChars masks, the k-th for at most k characters
};

}  // namespace kiln::constraint
