#include "constraint/matcher.h"

#include <algorithm>

namespace kiln::constraint {

Matcher::Matcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocab)
    : recognizer_(std::move(grammar)), vocab_(std::move(vocab)) {
  states_.push_back(recognizer_.initial_state());
  walk_states_.resize(vocab_->trie().max_depth + 1);
}

bool Matcher::IsAccepting() const {
  const int32_t state = states_.back();
  return state >= 0 && recognizer_.IsAccepting(state);
}

bool Matcher::MustEnd() const {
  const int32_t state = states_.back();
  return state >= 0 && recognizer_.IsAccepting(state) && !recognizer_.CanContinue(state);
}

Status Matcher::FillMask(std::span<uint64_t> mask) {
  if (mask.size() != vocab_->mask_words()) {
    return Error(ErrorCode::kInvalidArgument,
                 "mask has " + std::to_string(mask.size()) + " words, the vocabulary needs " +
                     std::to_string(vocab_->mask_words()));
  }
  std::fill(mask.begin(), mask.end(), 0);
  const int32_t state = states_.back();
  if (state < 0) return Status::Ok();
  if (auto it = mask_cache_.find(state); it != mask_cache_.end()) {
    std::copy(it->second.begin(), it->second.end(), mask.begin());
    return Status::Ok();
  }
  const TokenVocabulary& v = *vocab_;
  const int levels = PlainLevels(state);
  if (levels == kLevelsMixed) {
    WalkTrie(v.trie(), state, mask);
  } else {
    if (levels > 0) {
      const std::span<const uint64_t> plain = v.PlainTokenMask(levels);
      std::copy(plain.begin(), plain.end(), mask.begin());
    }
    WalkTrie(v.rest_trie(), state, mask);
  }
  if (recognizer_.IsAccepting(state)) {
    for (TokenId id : v.eos_ids()) mask[id >> 6] |= uint64_t{1} << (id & 63);
  }
  if (mask_cache_.size() >= kMaxCachedMasks) mask_cache_.clear();
  mask_cache_.emplace(state, std::vector<uint64_t>(mask.begin(), mask.end()));
  return Status::Ok();
}

void Matcher::WalkTrie(const TokenTrie& trie, int32_t state, std::span<uint64_t> mask) {
  const uint8_t* node_byte = trie.node_byte.data();
  const uint16_t* node_depth = trie.node_depth.data();
  const uint32_t* subtree_end = trie.node_subtree_end.data();
  const uint32_t* tokens_begin = trie.node_tokens_begin.data();
  const TokenId* token_ids = trie.token_ids.data();
  const uint32_t* below_set = trie.node_below_set.data();
  const TokenTrie::ByteSet* byte_sets = trie.byte_sets.data();
  int32_t* walk = walk_states_.data();
  walk[0] = state;
  const size_t num_nodes = trie.num_nodes();
  for (uint32_t i = 0; i < num_nodes;) {
    const int32_t next = recognizer_.Next(walk[node_depth[i] - 1], node_byte[i]);
    if (next == Recognizer::kDead) {
      i = subtree_end[i];
      continue;
    }
    walk[node_depth[i]] = next;
    uint32_t end = i + 1;
    // When the state loops on every byte below this node, every token below is allowed too.
    // Asked only of a state that just looped on this node's byte (inside a string, say), so
    // transient states never pay for computing their 256 transitions.
    if (subtree_end[i] > i + 1 && next == walk[node_depth[i] - 1]) {
      const TokenTrie::ByteSet& below = byte_sets[below_set[i]];
      const std::array<uint64_t, 4>& loops = recognizer_.LoopBytes(next);
      if (((below[0] & ~loops[0]) | (below[1] & ~loops[1]) | (below[2] & ~loops[2]) |
           (below[3] & ~loops[3])) == 0) {
        end = subtree_end[i];
      }
    }
    for (uint32_t k = tokens_begin[i]; k < tokens_begin[end]; ++k) {
      const auto id = static_cast<uint32_t>(token_ids[k]);
      mask[id >> 6] |= uint64_t{1} << (id & 63);
    }
    i = end;
  }
}

int32_t Matcher::CachedPlainSuccessor(int32_t state) {
  const auto index = static_cast<size_t>(state);
  if (index < plain_successor_.size() && plain_successor_[index] != kSuccessorUnknown) {
    return plain_successor_[index];
  }
  const int32_t next = PlainSuccessor(recognizer_, state);
  // PlainSuccessor may have added states: size the table after it.
  if (plain_successor_.size() <= index) plain_successor_.resize(recognizer_.num_states(), kSuccessorUnknown);
  plain_successor_[index] = next;
  return next;
}

int Matcher::PlainLevels(int32_t state) {
  auto known = [&](int32_t s) {
    return static_cast<size_t>(s) < plain_levels_.size() ? plain_levels_[s] : kLevelsUnknown;
  };
  auto remember = [&](int32_t s, int levels) {
    if (plain_levels_.size() <= static_cast<size_t>(s)) plain_levels_.resize(recognizer_.num_states(), kLevelsUnknown);
    plain_levels_[s] = static_cast<int8_t>(levels);
  };
  if (known(state) != kLevelsUnknown) return known(state);
  // chain_[i + 1] is the plain successor of chain_[i], alive and not known yet.
  chain_.assign(1, state);
  int levels;  // of chain_.back()
  while (true) {
    const int32_t current = chain_.back();
    const int32_t next = CachedPlainSuccessor(current);
    if (next == kMixedSuccessor) {
      levels = kLevelsMixed;
      break;
    }
    if (next == Recognizer::kDead) {
      levels = 0;
      break;
    }
    if (next == current) {
      levels = kMaxPlainChars;
      break;
    }
    if (const int next_levels = known(next); next_levels != kLevelsUnknown) {
      levels = next_levels == kLevelsMixed ? kLevelsMixed : std::min(kMaxPlainChars, next_levels + 1);
      break;
    }
    if (chain_.size() == static_cast<size_t>(kMaxPlainChars)) {
      // kMaxPlainChars characters stay alive from `state`, enough for every plain token. The
      // states along the way are not settled (each needs its own kMaxPlainChars steps).
      remember(state, kMaxPlainChars);
      return kMaxPlainChars;
    }
    chain_.push_back(next);
  }
  // Each earlier state of the chain allows one more character than its successor.
  for (size_t i = chain_.size(); i-- > 0;) {
    if (i + 1 < chain_.size() && levels != kLevelsMixed) levels = std::min(kMaxPlainChars, levels + 1);
    remember(chain_[i], levels);
  }
  return levels;
}

int32_t Matcher::Walk(int32_t state, std::string_view bytes) {
  for (char ch : bytes) {
    if (state < 0) return Recognizer::kDead;
    state = recognizer_.Next(state, static_cast<uint8_t>(ch));
  }
  return state;
}

Status Matcher::Accept(TokenId token) {
  if (IsTerminated()) {
    return Error(ErrorCode::kInvalidArgument, "token " + std::to_string(token) +
                                                  " after end of sequence: the constrained output has ended");
  }
  if (vocab_->IsEos(token)) {
    if (!IsAccepting()) {
      return Error(ErrorCode::kInvalidArgument,
                   "end-of-sequence token " + std::to_string(token) + " refused: the output is incomplete");
    }
    states_.push_back(kTerminated);
    return Status::Ok();
  }
  const std::string_view bytes = vocab_->TokenBytes(token);
  if (bytes.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "token " + std::to_string(token) + " is never allowed under a constraint (special or empty)");
  }
  const int32_t next = Walk(states_.back(), bytes);
  if (next < 0) {
    return Error(ErrorCode::kInvalidArgument, "token " + std::to_string(token) + " (\"" +
                                                  std::string(bytes) + "\") is not allowed here by the constraint");
  }
  states_.push_back(next);
  return Status::Ok();
}

Status Matcher::AcceptBytes(std::string_view bytes) {
  if (IsTerminated()) return Error(ErrorCode::kInvalidArgument, "bytes after end of sequence");
  const int32_t next = Walk(states_.back(), bytes);
  if (next < 0) {
    return Error(ErrorCode::kInvalidArgument, "text \"" + std::string(bytes) + "\" is not allowed here by the constraint");
  }
  states_.push_back(next);
  return Status::Ok();
}

Status Matcher::Rollback(size_t num_tokens) {
  if (num_tokens > num_accepted_tokens()) {
    return Error(ErrorCode::kOutOfRange, "cannot roll back " + std::to_string(num_tokens) +
                                             " tokens: only " + std::to_string(num_accepted_tokens()) +
                                             " were accepted");
  }
  states_.resize(states_.size() - num_tokens);
  return Status::Ok();
}

}  // namespace kiln::constraint
