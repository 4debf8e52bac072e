// Byte-pair-encoding model (HF tokenizers "BPE"): turns one pre-tokenized word into token ids.
//
//   BpeModel::Options options{.byte_fallback = true};
//   TRY_ASSIGN(BpeModel bpe, BpeModel::Build(std::move(pieces), merges, options));
//   std::vector<TokenId> ids;
//   bpe.EncodeWord("▁hello", &ids);
//
// Algorithm (same result as HF's Word::merge_all): the word starts as one symbol per UTF-8
// character (its vocabulary id). A character missing from the vocabulary becomes its UTF-8 bytes
// as "<0xXX>" tokens when byte_fallback is on and all of them exist, otherwise the unk token
// (consecutive unks fused when fuse_unk), otherwise it is dropped. Then, repeatedly, the adjacent
// pair with the lowest merge rank (leftmost on ties) is replaced by its merged token, until no
// adjacent pair has a merge. Words of up to kLinearScanSymbols symbols use a linear scan; longer
// ones a binary heap of candidate merges, so a word of n symbols costs O(n log n).
// ignore_merges: a word that is itself a vocabulary token is emitted as that token.
// newline_runs_whole (llama.cpp's Gemma 4 rule): a word made only of '\n' that is a vocabulary
// token is emitted as that token.
//
// Ownership: the model owns its piece strings; lookups return views valid for its lifetime.
// Thread-safety: const methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"

namespace kiln::tokenizer {

using TokenId = int32_t;

class BpeModel {
 public:
  struct Options {
    bool byte_fallback = false;
    std::optional<TokenId> unk_id;
    bool fuse_unk = false;
    bool ignore_merges = false;
    bool newline_runs_whole = false;
  };
  static constexpr size_t kLinearScanSymbols = 24;

  // `pieces[id]` is the token string of `id` (an empty string marks an unused id). Each merge
  // is (left, right) in rank order. A merge whose left, right or left+right is not a token is
  // skipped (HF rejects such files; llama.cpp ignores them); `skipped_merges` counts them.
  // Fails with kMalformed when two ids share a piece string.
  static Result<BpeModel> Build(std::vector<std::string> pieces,
                                const std::vector<std::pair<std::string, std::string>>& merges,
                                const Options& options);

  // Appends the ids of `word` (valid UTF-8, non-empty) to `out`.
  void EncodeWord(std::string_view word, std::vector<TokenId>* out) const;

  std::optional<TokenId> PieceToId(std::string_view piece) const;
  // "" for an id out of range.
  std::string_view IdToPiece(TokenId id) const;
  size_t vocab_size() const { return pieces_.size(); }
  size_t num_merges() const { return merges_.size(); }
  size_t skipped_merges() const { return skipped_merges_; }
  const Options& options() const { return options_; }
  // Id of the "<0xXX>" token of `byte`, or -1.
  TokenId ByteTokenId(uint8_t byte) const { return byte_ids_[byte]; }

 private:
  struct Merge {
    int32_t rank;
    TokenId merged;
  };
  // Open-addressing map from a (left, right) id pair to its merge.
  struct MergeTable {
    std::vector<uint64_t> keys;  // (left << 32 | right) + 1; 0 = empty
    std::vector<Merge> values;
    uint64_t mask = 0;
    void Reserve(size_t count);
    bool Insert(TokenId left, TokenId right, Merge merge);  // false when already present
    const Merge* Find(TokenId left, TokenId right) const;
    size_t size() const { return count; }
    size_t count = 0;
  };
  struct Symbol {
    TokenId id;
    int32_t prev, next;  // indexes into the word's symbols, -1 at the ends
    bool alive;
  };

  void InitialSymbols(std::string_view word, std::vector<Symbol>* symbols) const;
  void MergeLinear(std::vector<Symbol>* symbols) const;
  void MergeHeap(std::vector<Symbol>* symbols) const;

  std::vector<std::string> pieces_;
  std::unordered_map<std::string_view, TokenId> piece_to_id_;  // views into pieces_
  MergeTable merges_;
  size_t skipped_merges_ = 0;
  TokenId byte_ids_[256];
  Options options_;
};

}  // namespace kiln::tokenizer
