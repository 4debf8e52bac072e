#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <cstring>
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

uint64_t HashPiece(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t chunk;
    std::memcpy(&chunk, s.data() + i, 8);
    h = (h ^ chunk) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * 0xc4ceb9fe1a85ec53ULL;
  return h ^ (h >> 29);
}

}  // namespace

void BpeModel::PieceTable::Reserve(size_t n) {
  size_t capacity = 16;
  while (capacity < n * 2) capacity *= 2;
  slots.assign(capacity, Slot{0, 0, 0, 0});
  mask = capacity - 1;
}

TokenId BpeModel::PieceTable::Insert(std::string_view piece, TokenId id, const PieceStore& store) {
  const uint64_t h = HashPiece(piece);
  const auto tag = static_cast<uint32_t>(h >> 32);
  for (uint64_t i = h & mask;; i = (i + 1) & mask) {
    Slot& slot = slots[i];
    if (slot.id_plus_one == 0) {
      slot = Slot{tag, static_cast<uint32_t>(id) + 1, store.offsets[id], static_cast<uint32_t>(piece.size())};
      return -1;
    }
    if (slot.tag == tag && std::string_view(store.data).substr(slot.offset, slot.length) == piece) {
      return static_cast<TokenId>(slot.id_plus_one - 1);
    }
  }
}

TokenId BpeModel::PieceTable::Find(std::string_view piece, uint64_t h, const PieceStore& store) const {
  if (slots.empty()) return -1;
  const auto tag = static_cast<uint32_t>(h >> 32);
  for (uint64_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots[i];
    if (slot.id_plus_one == 0) return -1;
    if (slot.tag == tag && slot.length == piece.size() &&
        std::memcmp(store.data.data() + slot.offset, piece.data(), piece.size()) == 0) {
      return static_cast<TokenId>(slot.id_plus_one - 1);
    }
  }
}

TokenId BpeModel::PieceTable::Find(std::string_view piece, const PieceStore& store) const {
  return Find(piece, HashPiece(piece), store);
}

void BpeModel::MergeTable::Reserve(size_t n) {
  size_t capacity = 16;
  while (capacity < n * 2) capacity *= 2;
  slots.assign(capacity, Slot{0, Merge{0, 0}});
  mask = capacity - 1;
  count = 0;
}

bool BpeModel::MergeTable::Insert(TokenId left, TokenId right, Merge merge) {
  const uint64_t key = PairKey(left, right);
  for (uint64_t i = HashKey(key) & mask;; i = (i + 1) & mask) {
    if (slots[i].key == key) return false;
    if (slots[i].key == 0) {
      slots[i] = Slot{key, merge};
      ++count;
      return true;
    }
  }
}

const BpeModel::Merge* BpeModel::MergeTable::Find(TokenId left, TokenId right) const {
  if (slots.empty()) return nullptr;
  const uint64_t key = PairKey(left, right);
  for (uint64_t i = HashKey(key) & mask;; i = (i + 1) & mask) {
    if (slots[i].key == key) return &slots[i].merge;
    if (slots[i].key == 0) return nullptr;
  }
}

Result<BpeModel> BpeModel::Build(std::vector<std::string> pieces,
                                 const MergeList& merges,
                                 const Options& options) {
  static std::atomic<uint64_t> next_instance_id{1};
  BpeModel model;
  model.instance_id_ = next_instance_id.fetch_add(1);
  model.options_ = options;
  size_t total_bytes = 0;
  for (const std::string& piece : pieces) total_bytes += piece.size();
  if (total_bytes >= UINT32_MAX) return Error(ErrorCode::kMalformed, "vocabulary strings exceed 4 GiB");
  model.pieces_.data.reserve(total_bytes);
  model.pieces_.offsets.reserve(pieces.size() + 1);
  for (const std::string& piece : pieces) {
    model.pieces_.data += piece;
    model.pieces_.offsets.push_back(static_cast<uint32_t>(model.pieces_.data.size()));
  }
  pieces.clear();
  pieces.shrink_to_fit();
  model.piece_to_id_.Reserve(model.pieces_.size());
  for (size_t id = 0; id < model.pieces_.size(); ++id) {
    const std::string_view piece = model.pieces_.Get(id);
    if (piece.empty()) continue;
    const TokenId existing = model.piece_to_id_.Insert(piece, static_cast<TokenId>(id), model.pieces_);
    if (existing >= 0) {
      return Error(ErrorCode::kMalformed, "vocabulary lists token '" + std::string(piece) + "' twice (ids " +
                                              std::to_string(existing) + " and " + std::to_string(id) + ")");
    }
  }
  char name[8];
  for (int b = 0; b < 256; ++b) {
    snprintf(name, sizeof(name), "<0x%02X>", b);
    auto id = model.PieceToId(name);
    model.byte_ids_[b] = id.value_or(-1);
  }
  model.merges_.Reserve(merges.size());
  // Resolving 500k merges is memory-latency bound (three random table probes each), so hashes
  // for a batch are computed and their slots prefetched before the probes.
  constexpr size_t kBatch = 16;
  std::string joined[kBatch];
  uint64_t hashes[kBatch][3];
  for (size_t base = 0; base < merges.size(); base += kBatch) {
    const size_t count = std::min(kBatch, merges.size() - base);
    for (size_t k = 0; k < count; ++k) {
      const std::string_view left = merges.Left(base + k), right = merges.Right(base + k);
      joined[k].assign(left).append(right);
      hashes[k][0] = HashPiece(left);
      hashes[k][1] = HashPiece(right);
      hashes[k][2] = HashPiece(joined[k]);
      for (uint64_t h : hashes[k]) model.piece_to_id_.Prefetch(h);
    }
    for (size_t k = 0; k < count; ++k) {
      const std::string_view left = merges.Left(base + k), right = merges.Right(base + k);
      const TokenId left_id = model.piece_to_id_.Find(left, hashes[k][0], model.pieces_);
      const TokenId right_id = model.piece_to_id_.Find(right, hashes[k][1], model.pieces_);
      const TokenId merged_id = model.piece_to_id_.Find(joined[k], hashes[k][2], model.pieces_);
      if (left_id < 0 || right_id < 0 || merged_id < 0) {
        ++model.skipped_merges_;
        continue;
      }
      // A repeated pair keeps its first rank as in llama.cpp (HF would keep the last); the real
      // files have no repeats.
      model.merges_.Insert(left_id, right_id, Merge{static_cast<int32_t>(base + k), merged_id});
    }
  }
  return model;
}

std::optional<TokenId> BpeModel::PieceToId(std::string_view piece) const {
  const TokenId id = piece_to_id_.Find(piece, pieces_);
  if (id < 0) return std::nullopt;
  return id;
}

std::string_view BpeModel::IdToPiece(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return {};
  return pieces_.Get(static_cast<size_t>(id));
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
  // Per-thread cache of short words (real text repeats them: " the", "\n\n", ...), tagged
  // with the model's instance id so that another model in the same thread starts afresh.
  struct WordCache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<TokenId>> ids;
  };
  thread_local WordCache cache;
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    if (cache.owner != instance_id_) {
      cache.ids.clear();
      cache.owner = instance_id_;
    }
    auto it = cache.ids.find(std::string(word));
    if (it != cache.ids.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
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
  const size_t first = out->size();
  for (const Symbol& sym : symbols) out->push_back(sym.id);
  if (cacheable) {
    if (cache.ids.size() >= kMaxCachedWords) cache.ids.clear();
    cache.ids.emplace(std::string(word), std::vector<TokenId>(out->begin() + static_cast<std::ptrdiff_t>(first), out->end()));
  }
}

}  // namespace kiln::tokenizer
