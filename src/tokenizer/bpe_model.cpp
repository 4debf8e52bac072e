#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <queue>

#include "tokenizer/utf8.h"

namespace kiln::tokenizer {
namespace {

uint64_t HashKey(uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdULL;
  key ^= key >> 33;
  return key;
}

uint64_t PairKey(TokenId left, TokenId right) {
  return ((static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right)) + 1;
}

}  // namespace

void BpeModel::MergeTable::Reserve(size_t n) {
  size_t capacity = 16;
  while (capacity < n * 2) capacity *= 2;
  keys.assign(capacity, 0);
  values.assign(capacity, Merge{0, 0});
  mask = capacity - 1;
  count = 0;
}

bool BpeModel::MergeTable::Insert(TokenId left, TokenId right, Merge merge) {
  const uint64_t key = PairKey(left, right);
  for (uint64_t slot = HashKey(key) & mask;; slot = (slot + 1) & mask) {
    if (keys[slot] == key) return false;
    if (keys[slot] == 0) {
      keys[slot] = key;
      values[slot] = merge;
      ++count;
      return true;
    }
  }
}

const BpeModel::Merge* BpeModel::MergeTable::Find(TokenId left, TokenId right) const {
  if (keys.empty()) return nullptr;
  const uint64_t key = PairKey(left, right);
  for (uint64_t slot = HashKey(key) & mask;; slot = (slot + 1) & mask) {
    if (keys[slot] == key) return &values[slot];
    if (keys[slot] == 0) return nullptr;
  }
}

Result<BpeModel> BpeModel::Build(std::vector<std::string> pieces,
                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                 const Options& options) {
  BpeModel model;
  model.options_ = options;
  model.pieces_ = std::move(pieces);
  model.piece_to_id_.reserve(model.pieces_.size());
  for (size_t id = 0; id < model.pieces_.size(); ++id) {
    const std::string& piece = model.pieces_[id];
    if (piece.empty()) continue;
    if (!model.piece_to_id_.emplace(piece, static_cast<TokenId>(id)).second) {
      return Error(ErrorCode::kMalformed, "vocabulary lists token '" + piece + "' twice (ids " +
                                              std::to_string(model.piece_to_id_[piece]) + " and " +
                                              std::to_string(id) + ")");
    }
  }
  char name[8];
  for (int b = 0; b < 256; ++b) {
    snprintf(name, sizeof(name), "<0x%02X>", b);
    auto id = model.PieceToId(name);
    model.byte_ids_[b] = id.value_or(-1);
  }
  model.merges_.Reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    joined.assign(left).append(right);
    auto left_id = model.PieceToId(left);
    auto right_id = model.PieceToId(right);
    auto merged_id = model.PieceToId(joined);
    if (!left_id || !right_id || !merged_id) {
      ++model.skipped_merges_;
      continue;
    }
    // A repeated pair keeps its first rank as in llama.cpp (HF would keep the last); the real
    // files have no repeats.
    model.merges_.Insert(*left_id, *right_id, Merge{static_cast<int32_t>(rank), *merged_id});
  }
  return model;
}

std::optional<TokenId> BpeModel::PieceToId(std::string_view piece) const {
  auto it = piece_to_id_.find(piece);
  if (it == piece_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string_view BpeModel::IdToPiece(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return {};
  return pieces_[id];
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<Symbol>* symbols) const {
  size_t pos = 0;
  bool previous_unk = false;
  auto push = [&](TokenId id) {
    symbols->push_back(Symbol{id, static_cast<int32_t>(symbols->size()) - 1, -1, true});
  };
  while (pos < word.size()) {
    size_t length = Utf8SequenceLength(word, pos);
    if (length == 0) length = 1;  // unreachable for sanitized input
    const std::string_view ch = word.substr(pos, length);
    pos += length;
    if (auto id = PieceToId(ch)) {
      push(*id);
      previous_unk = false;
      continue;
    }
    if (options_.byte_fallback &&
        std::all_of(ch.begin(), ch.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
      for (char c : ch) push(byte_ids_[static_cast<unsigned char>(c)]);
      previous_unk = false;
      continue;
    }
    if (!options_.unk_id.has_value()) continue;
    if (!(options_.fuse_unk && previous_unk)) push(*options_.unk_id);
    previous_unk = true;
  }
  for (size_t i = 0; i + 1 < symbols->size(); ++i) (*symbols)[i].next = static_cast<int32_t>(i + 1);
}

void BpeModel::MergeLinear(std::vector<Symbol>* symbols) const {
  // Symbols are compacted after each merge, so the vector itself is the sequence.
  std::vector<Symbol>& s = *symbols;
  while (s.size() > 1) {
    int32_t best_rank = INT32_MAX;
    size_t best = 0;
    TokenId best_merged = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const Merge* m = merges_.Find(s[i].id, s[i + 1].id);
      if (m != nullptr && m->rank < best_rank) {
        best_rank = m->rank;
        best = i;
        best_merged = m->merged;
      }
    }
    if (best_rank == INT32_MAX) return;
    s[best].id = best_merged;
    s.erase(s.begin() + best + 1);
  }
}

void BpeModel::MergeHeap(std::vector<Symbol>* symbols) const {
  std::vector<Symbol>& s = *symbols;
  struct Candidate {
    int32_t rank;
    int32_t pos;  // index of the left symbol
    TokenId left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t pos) {
    if (pos < 0 || s[pos].next < 0) return;
    const Symbol& left = s[pos];
    const Symbol& right = s[left.next];
    if (const Merge* m = merges_.Find(left.id, right.id)) queue.push({m->rank, pos, left.id, right.id});
  };
  for (size_t i = 0; i + 1 < s.size(); ++i) consider(static_cast<int32_t>(i));
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = s[c.pos];
    if (!left.alive || left.id != c.left || left.next < 0) continue;
    Symbol& right = s[left.next];
    if (right.id != c.right) continue;  // stale: one side changed since it was queued
    left.id = merges_.Find(c.left, c.right)->merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) s[right.next].prev = c.pos;
    consider(left.prev);
    consider(c.pos);
  }
  size_t out = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i].alive) s[out++] = s[i];
  }
  s.resize(out);
}

void BpeModel::EncodeWord(std::string_view word, std::vector<TokenId>* out) const {
  if (options_.ignore_merges || (options_.newline_runs_whole && word.find_first_not_of('\n') == std::string_view::npos)) {
    if (auto id = PieceToId(word)) {
      out->push_back(*id);
      return;
    }
  }
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  InitialSymbols(word, &symbols);
  if (symbols.size() <= kLinearScanSymbols) {
    MergeLinear(&symbols);
  } else {
    MergeHeap(&symbols);
  }
  for (const Symbol& sym : symbols) out->push_back(sym.id);
}

}  // namespace kiln::tokenizer
