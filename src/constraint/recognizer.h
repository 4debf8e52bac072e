// Recognizer: matches bytes against a Grammar with a pushdown automaton, memoized into a lazy DFA.
//
//   Recognizer rec(grammar);
//   int32_t s = rec.initial_state();
//   for (uint8_t b : bytes) { s = rec.Next(s, b); if (s == Recognizer::kDead) break; }
//   bool ok = s != Recognizer::kDead && rec.IsAccepting(s);
//
// A configuration is a set of heads: (position of a byte-class element, call stack). Stacks are
// persistent linked lists of return positions, interned, so equal stacks have equal ids. Reading
// a byte advances every head whose class holds it, then closes the result: entering a rule pushes
// the position after the call (except for a call in tail position, which reuses the caller's
// frame: x* desugars into right recursion and stays flat), reaching an alternative's end pops.
// Reaching the end of the root rule with an empty stack marks the configuration accepting. The
// closure deduplicates (position, stack) pairs, which with left recursion refused at compile
// time makes it terminate. This is the "stack of automata" design of llama.cpp's grammar engine
// and xgrammar's pushdown automaton, written as a GLR-style set so ambiguous grammars just work.
//
// Each distinct configuration becomes a state id; transitions (state, byte) -> state are cached
// in a 256-entry row per state, so after warm-up a byte costs one table load. The bytes that every
// head of the state reads alike (each head's class holds all of them or none) reach the same state,
// so one closure fills all their entries: inside a JSON string, every ASCII character but '"' and
// '\\' at once. The trie walk of
// the token vocabulary (matcher.h) runs on these rows.
//
// Bounds (an exceeded bound rejects the byte, it never crashes): call stack depth
// kMaxStackDepth (JSON nesting of a few hundred levels), closure size kMaxClosureItems,
// kMaxStates cached states (about 1 KiB each).
//
// Not thread-safe (it fills its caches on use): one per sequence, or guarded by the caller.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "constraint/grammar.h"

namespace kiln::constraint {

class Recognizer {
 public:
  static constexpr int32_t kDead = -1;
  static constexpr uint32_t kMaxStackDepth = 1024;
  static constexpr size_t kMaxClosureItems = 100000;
  static constexpr size_t kMaxStates = 100000;

  explicit Recognizer(std::shared_ptr<const Grammar> grammar);

  int32_t initial_state() const { return initial_state_; }
  // The state after reading `byte` in `state` (state must not be kDead), or kDead.
  int32_t Next(int32_t state, uint8_t byte) {
    const int32_t cached = transitions_[static_cast<size_t>(state) * 256 + byte];
    return cached != kUnknown ? cached : ComputeNext(state, byte);
  }
  // The whole input read so far is a sentence of the grammar.
  bool IsAccepting(int32_t state) const { return accepting_[state] != 0; }
  // Some byte may still follow.
  bool CanContinue(int32_t state) const { return !heads_[state].empty(); }
  size_t num_states() const { return heads_.size(); }
  // Bytes b with Next(state, b) == state (computed once per state, on first use).
  const std::array<uint64_t, 4>& LoopBytes(int32_t state);
  // A bound above was hit at least once (the affected input was rejected).
  bool hit_limit() const { return hit_limit_; }
  const Grammar& grammar() const { return *grammar_; }

 private:
  static constexpr int32_t kUnknown = -2;
  struct StackNode {
    uint32_t return_position;
    uint32_t parent;
    uint32_t depth;
  };
  struct VectorHash {
    size_t operator()(const std::vector<uint64_t>& v) const;
  };

  int32_t ComputeNext(int32_t state, uint8_t byte);
  // Closes worklist_ into heads (sorted) and the accepting flag; kDead when nothing survives.
  int32_t CloseAndIntern();
  uint32_t PushFrame(uint32_t return_position, uint32_t parent);

  std::shared_ptr<const Grammar> grammar_;
  std::vector<StackNode> stacks_;  // [0] is the empty stack
  std::unordered_map<uint64_t, uint32_t> stack_ids_;
  std::vector<std::vector<uint64_t>> heads_;  // per state: (position << 32 | stack), sorted
  std::vector<uint8_t> accepting_;
  std::unordered_map<std::vector<uint64_t>, int32_t, VectorHash> state_ids_;
  std::vector<int32_t> transitions_;  // state * 256 + byte
  std::vector<std::array<uint64_t, 4>> loop_bytes_;
  std::vector<uint8_t> loop_bytes_known_;
  int32_t initial_state_ = kDead;
  bool hit_limit_ = false;
  // Scratch for the closure, kept to avoid reallocating.
  std::vector<uint64_t> worklist_;
  std::unordered_set<uint64_t> visited_;
};

}  // namespace kiln::constraint
