#include "constraint/matcher.h"

#include <algorithm>

namespace kiln::constraint {

Matcher::Matcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocab)
    : recognizer_(std::move(grammar)), vocab_(std::move(vocab)) {
  states_.push_back(recognizer_.initial_state());
  walk_states_.resize(vocab_->max_depth() + 1);
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
  const uint8_t* node_byte = v.node_byte().data();
  const uint16_t* node_depth = v.node_depth().data();
  const uint32_t* subtree_end = v.node_subtree_end().data();
  const uint32_t* tokens_begin = v.node_tokens_begin().data();
  const TokenId* token_ids = v.token_ids().data();
  const uint32_t* below_set = v.node_below_set().data();
  const TokenVocabulary::ByteSet* byte_sets = v.byte_sets().data();
  int32_t* walk = walk_states_.data();
  walk[0] = state;
  const size_t num_nodes = v.num_nodes();
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
      const TokenVocabulary::ByteSet& below = byte_sets[below_set[i]];
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
  if (recognizer_.IsAccepting(state)) {
    for (TokenId id : v.eos_ids()) mask[id >> 6] |= uint64_t{1} << (id & 63);
  }
  if (mask_cache_.size() >= kMaxCachedMasks) mask_cache_.clear();
  mask_cache_.emplace(state, std::vector<uint64_t>(mask.begin(), mask.end()));
  return Status::Ok();
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
