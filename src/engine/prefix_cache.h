// A cache of prompt prefixes' KV blocks on one Runner's pool, shared by the sequences that begin
// with the same tokens: the scheduler's for the target, a draft model's for its own pool.
//
//   PrefixCache cache(runner);
//   Sequence sequence(runner.pool());
//   const int64_t reused = cache.Adopt(prompt, sequence);  // positions [0, reused) are present
//   ... run prompt[reused, ...) ...
//   if (sequence.length() >= cache.CachedLength(prompt.size())) TRY(cache.Insert(prompt, sequence));
//
// An entry is a prompt prefix of L tokens, L a multiple of the block size: the full layers'
// blocks of positions [0, L), shared as they are (a later writer only ever writes positions >= L,
// into blocks of its own), and for each sliding group a copy of the ring blocks that hold
// positions [L - window + 1, L), the only ones a position >= L will read. The copy is taken right
// after the step that crossed L: a step runs at most Tmax tokens and a ring holds window + Tmax
// - 1 slots, so those positions are still in the ring then. A sequence adopting the entry gets
// the full blocks and fresh copies of the ring blocks at their ring indices; slots of the copied
// blocks that hold other positions are never read before the sequence writes them.
//
// The blocks an entry holds stay out of the pool until EvictOne gives back the least recently
// used entry: whoever runs short of blocks evicts before giving up. Not thread-safe (its owner's
// step loop uses it).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "runtime/runner.h"

namespace kiln {

class PrefixCache {
 public:
  explicit PrefixCache(Runner& runner);
  ~PrefixCache();  // gives every entry's blocks back
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // False when the model has sliding layers and the backend cannot copy blocks: nothing is cached.
  bool enabled() const { return enabled_; }
  // The prefix length a prompt is cached at: its last whole block before its last token (which
  // always runs, since its logits pick the first new token).
  int64_t CachedLength(size_t prompt_tokens) const;
  // Gives the empty `sequence` the longest cached prefix of `prompt` and returns its length (its
  // positions are then present); 0 when none is cached, or the ring copies find no free blocks.
  int64_t Adopt(std::span<const int32_t> prompt, Sequence& sequence);
  // Caches prompt[0, CachedLength) from `sequence`, which must hold those positions (it crossed
  // CachedLength in its last step, or adopted them); a prefix cached already becomes the most
  // recently used. A pool too full for the ring copies leaves it uncached. Errors: the block copy's.
  Status Insert(std::span<const int32_t> prompt, const Sequence& sequence);
  // Gives the least recently used entry's blocks back; false when the cache is empty.
  bool EvictOne();
  // Blocks the entries hold, over every group.
  int64_t cached_blocks() const { return cached_blocks_; }

 private:
  struct Entry {
    std::vector<int32_t> tokens;  // the prefix itself (hash collisions are checked, not trusted)
    // Per KV group, the (block table index, block) pairs the entry holds.
    std::vector<std::vector<std::pair<int64_t, int32_t>>> blocks;
    std::list<uint64_t>::iterator lru;
  };
  void Count();

  Runner& runner_;
  const Program& program_;
  bool enabled_ = true;
  std::unordered_map<uint64_t, std::unique_ptr<Entry>> entries_;  // by prefix hash
  std::list<uint64_t> lru_;                                       // oldest first
  int64_t cached_blocks_ = 0;
};

}  // namespace kiln
