#include "constraint/recognizer.h"

#include <algorithm>
#include <bit>

namespace kiln::constraint {
namespace {

constexpr uint64_t Item(uint32_t position, uint32_t stack) {
  return (uint64_t{position} << 32) | stack;
}

}  // namespace

size_t Recognizer::VectorHash::operator()(const std::vector<uint64_t>& v) const {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ v.size();
  for (uint64_t x : v) {
    h ^= x + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xFF51AFD7ED558CCDull;
  }
  return static_cast<size_t>(h);
}

Recognizer::Recognizer(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {
  stacks_.push_back({0, 0, 0});
  for (uint32_t start : grammar_->rule_starts[grammar_->root]) worklist_.push_back(Item(start, 0));
  initial_state_ = CloseAndIntern();
}

uint32_t Recognizer::PushFrame(uint32_t return_position, uint32_t parent) {
  const uint64_t key = Item(return_position, parent);
  auto [it, inserted] = stack_ids_.emplace(key, static_cast<uint32_t>(stacks_.size()));
  if (inserted) stacks_.push_back({return_position, parent, stacks_[parent].depth + 1});
  return it->second;
}

int32_t Recognizer::ComputeNext(int32_t state, uint8_t byte) {
  const Grammar& g = *grammar_;
  worklist_.clear();
  Grammar::ByteClass alike = {~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0}};
  for (uint64_t head : heads_[state]) {
    const auto position = static_cast<uint32_t>(head >> 32);
    const Grammar::ByteClass& c = g.byte_classes[g.elements[position].index];
    const bool holds = Grammar::Contains(c, byte);
    if (holds) worklist_.push_back(Item(position + 1, static_cast<uint32_t>(head)));
    for (int w = 0; w < 4; ++w) alike[w] &= holds ? c[w] : ~c[w];
  }
  const int32_t next = CloseAndIntern();
  // CloseAndIntern may have grown transitions_; index it afresh. The bytes every head reads as
  // it reads `byte` advance the same heads, so they reach the same state.
  int32_t* row = &transitions_[static_cast<size_t>(state) * 256];
  for (int w = 0; w < 4; ++w) {
    for (uint64_t bits = alike[w]; bits != 0; bits &= bits - 1) row[w * 64 + std::countr_zero(bits)] = next;
  }
  return next;
}

int32_t Recognizer::CloseAndIntern() {
  const Grammar& g = *grammar_;
  std::vector<uint64_t> heads;
  bool accepting = false;
  visited_.clear();
  for (uint64_t item : worklist_) visited_.insert(item);
  while (!worklist_.empty()) {
    const uint64_t item = worklist_.back();
    worklist_.pop_back();
    if (visited_.size() > kMaxClosureItems) {
      hit_limit_ = true;
      worklist_.clear();
      return kDead;
    }
    const auto position = static_cast<uint32_t>(item >> 32);
    const auto stack = static_cast<uint32_t>(item);
    const Grammar::Element& e = g.elements[position];
    auto push = [&](uint64_t next) {
      if (visited_.insert(next).second) worklist_.push_back(next);
    };
    switch (e.kind) {
      case Grammar::ElementKind::kBytes:
        heads.push_back(item);
        break;
      case Grammar::ElementKind::kEnd:
        if (stack == 0) {
          accepting = true;
        } else {
          push(Item(stacks_[stack].return_position, stacks_[stack].parent));
        }
        break;
      case Grammar::ElementKind::kRule: {
        uint32_t callee_stack = stack;
        if (g.elements[position + 1].kind != Grammar::ElementKind::kEnd) {
          if (stacks_[stack].depth >= kMaxStackDepth) {
            hit_limit_ = true;
            break;
          }
          callee_stack = PushFrame(position + 1, stack);
        }
        for (uint32_t start : g.rule_starts[e.index]) push(Item(start, callee_stack));
        break;
      }
    }
  }
  if (heads.empty() && !accepting) return kDead;
  std::sort(heads.begin(), heads.end());
  // The key is the heads plus a trailing accepting marker (no real head is all ones).
  std::vector<uint64_t> key = heads;
  key.push_back(accepting ? ~uint64_t{0} : ~uint64_t{1});
  auto it = state_ids_.find(key);
  if (it != state_ids_.end()) return it->second;
  if (heads_.size() >= kMaxStates) {
    hit_limit_ = true;
    return kDead;
  }
  const auto id = static_cast<int32_t>(heads_.size());
  state_ids_.emplace(std::move(key), id);
  heads_.push_back(std::move(heads));
  accepting_.push_back(accepting ? 1 : 0);
  transitions_.resize(transitions_.size() + 256, kUnknown);
  loop_bytes_.emplace_back();
  loop_bytes_known_.push_back(0);
  return id;
}

const std::array<uint64_t, 4>& Recognizer::LoopBytes(int32_t state) {
  if (!loop_bytes_known_[state]) {
    std::array<uint64_t, 4> loops{};
    for (int b = 0; b < 256; ++b) {
      if (Next(state, static_cast<uint8_t>(b)) == state) loops[b >> 6] |= uint64_t{1} << (b & 63);
    }
    loop_bytes_[state] = loops;  // after the Next calls: they may grow loop_bytes_
    loop_bytes_known_[state] = 1;
  }
  return loop_bytes_[state];
}

bool GrammarMatches(const Grammar& grammar, std::string_view bytes) {
  // Non-owning: the caller's grammar outlives this call.
  Recognizer rec(std::shared_ptr<const Grammar>(std::shared_ptr<const Grammar>(), &grammar));
  int32_t state = rec.initial_state();
  for (char ch : bytes) {
    if (state == Recognizer::kDead) return false;
    state = rec.Next(state, static_cast<uint8_t>(ch));
  }
  return state != Recognizer::kDead && rec.IsAccepting(state);
}

}  // namespace kiln::constraint
