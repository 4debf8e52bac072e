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
// The trie is stored in preorder: node i has a byte, a depth (1 = first byte of a token), the
// index one past its subtree, and the ids of tokens whose bytes end at it. Walking it in order
// with a state per depth, a rejected node skips its whole subtree.
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

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace kiln::constraint {

using TokenId = int32_t;

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

  // Trie, preorder. Node 0 is the first child of the (implicit) root.
  size_t num_nodes() const { return node_byte_.size(); }
  size_t max_depth() const { return max_depth_; }
  const std::vector<uint8_t>& node_byte() const { return node_byte_; }
  const std::vector<uint16_t>& node_depth() const { return node_depth_; }
  const std::vector<uint32_t>& node_subtree_end() const { return node_subtree_end_; }
  // Tokens ending at node i: token_ids()[node_tokens_begin()[i] .. node_tokens_begin()[i+1]).
  const std::vector<uint32_t>& node_tokens_begin() const { return node_tokens_begin_; }
  const std::vector<TokenId>& token_ids() const { return token_ids_; }
  // The bytes that occur strictly below node i (in any token that extends it), as a 256-bit set:
  // byte_sets()[node_below_set()[i]]. Lets the walk accept a whole subtree at once when the
  // state loops on all of them (inside a JSON string, most of the vocabulary).
  using ByteSet = std::array<uint64_t, 4>;
  const std::vector<uint32_t>& node_below_set() const { return node_below_set_; }
  const std::vector<ByteSet>& byte_sets() const { return byte_sets_; }

 private:
  size_t num_tokens_ = 0;
  std::vector<TokenId> eos_ids_;
  std::vector<uint8_t> is_eos_;
  std::vector<std::string> bytes_;
  std::vector<uint8_t> node_byte_;
  std::vector<uint16_t> node_depth_;
  std::vector<uint32_t> node_subtree_end_;
  std::vector<uint32_t> node_tokens_begin_;  // num_nodes + 1 entries
  std::vector<TokenId> token_ids_;
  std::vector<uint32_t> node_below_set_;
  std::vector<ByteSet> byte_sets_;
  size_t max_depth_ = 0;
};

}  // namespace kiln::constraint
