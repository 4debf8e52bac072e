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
// Thread-safety: const methods are safe to call concurrently (the word cache is per thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace kiln::tokenizer {

using TokenId = int32_t;

// Merge rules in rank order, stored flat (one buffer, two offsets per rule) because real files
// have 500k of them and a vector of string pairs costs ~100 MB of small allocations.
class MergeList {
 public:
  void Add(std::string_view left, std::string_view right) {
    data_.append(left);
    const auto left_end = static_cast<uint32_t>(data_.size());
    data_.append(right);
    Commit(left_end, left_end);
  }
  // In-place form for parsers: append the rule's bytes to *buffer(), then Commit the offsets
  // where the left part ends and the right part begins (the right part ends at the buffer end).
  std::string* buffer() { return &data_; }
  void Commit(uint32_t left_end, uint32_t right_begin) {
    bounds_.push_back(left_end);
    bounds_.push_back(right_begin);
    bounds_.push_back(static_cast<uint32_t>(data_.size()));
  }
  void Reserve(size_t count, size_t bytes) {
    bounds_.reserve(count * 3);
    data_.reserve(bytes);
  }
  size_t size() const { return bounds_.size() / 3; }
  std::string_view Left(size_t i) const { return Slice(i == 0 ? 0 : bounds_[3 * i - 1], bounds_[3 * i]); }
  std::string_view Right(size_t i) const { return Slice(bounds_[3 * i + 1], bounds_[3 * i + 2]); }
  void Clear() {
    data_.clear();
    data_.shrink_to_fit();
    bounds_.clear();
    bounds_.shrink_to_fit();
  }

 private:
  std::string_view Slice(size_t begin, size_t end) const { return std::string_view(data_).substr(begin, end - begin); }
  std::string data_;              // < 4 GiB: callers check before Commit
  std::vector<uint32_t> bounds_;  // per rule: left end, right begin, right end
};

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
  // EncodeWord caches the ids of words up to this size, per thread, up to kMaxCachedWords.
  static constexpr size_t kMaxCachedWordBytes = 48;
  static constexpr size_t kMaxCachedWords = 1 << 15;

  // `pieces[id]` is the token string of `id` (an empty string marks an unused id). Each merge
  // is (left, right) in rank order. A merge whose left, right or left+right is not a token is
  // skipped (HF rejects such files; llama.cpp ignores them); `skipped_merges` counts them.
  // Fails with kMalformed when two ids share a piece string.
  static Result<BpeModel> Build(std::vector<std::string> pieces,
                                const MergeList& merges,
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
  // Open-addressing map from a (left, right) id pair to its merge; key and value share a slot
  // so a lookup costs one cache line.
  struct MergeTable {
    struct Slot {
      uint64_t key;  // (left << 32 | right) + 1; 0 = empty
      Merge merge;
    };
    std::vector<Slot> slots;
    uint64_t mask = 0;
    size_t count = 0;
    void Reserve(size_t count);
    bool Insert(TokenId left, TokenId right, Merge merge);  // false when already present
    const Merge* Find(TokenId left, TokenId right) const;
    size_t size() const { return count; }
  };
  // All piece strings in one buffer: piece `id` is data[offsets[id], offsets[id + 1]).
  struct PieceStore {
    std::string data;
    std::vector<uint32_t> offsets{0};
    std::string_view Get(size_t id) const { return std::string_view(data).substr(offsets[id], offsets[id + 1] - offsets[id]); }
    size_t size() const { return offsets.size() - 1; }
  };
  // Open-addressing map from a piece string to its id. A slot carries the string's location, so
  // a probe reads the slot and the bytes, nothing else.
  struct PieceTable {
    struct Slot {
      uint32_t tag;     // high hash bits
      uint32_t id_plus_one;  // 0 = empty
      uint32_t offset, length;  // into PieceStore::data
    };
    std::vector<Slot> slots;
    uint64_t mask = 0;
    void Reserve(size_t count);
    // Returns the id already stored for `piece` (then nothing is inserted), or -1.
    TokenId Insert(std::string_view piece, TokenId id, const PieceStore& store);
    TokenId Find(std::string_view piece, uint64_t hash, const PieceStore& store) const;
    TokenId Find(std::string_view piece, const PieceStore& store) const;
    void Prefetch(uint64_t hash) const { __builtin_prefetch(&slots[hash & mask]); }
  };
  struct Symbol {
    TokenId id;
    int32_t prev, next;  // indexes into the word's symbols, -1 at the ends
    bool alive;
  };

  void InitialSymbols(std::string_view word, std::vector<Symbol>* symbols) const;
  void MergeLinear(std::vector<Symbol>* symbols) const;
  void MergeHeap(std::vector<Symbol>* symbols) const;

  PieceStore pieces_;
  PieceTable piece_to_id_;
  MergeTable merges_;
  size_t skipped_merges_ = 0;
  TokenId byte_ids_[256];
  Options options_;
  uint64_t instance_id_ = 0;  // tags the per-thread word cache
};

}  // namespace kiln::tokenizer
