// The scheduler's prefix cache (scheduler.h, docs/engine.md).
//
// An entry is a prompt prefix of L tokens, L a multiple of the block size: the full layers'
// blocks of positions [0, L), shared as they are (a later writer only ever writes positions >= L,
// into blocks of its own), and for each sliding group a copy of the ring blocks that hold
// positions [L - window + 1, L), the only ones a position >= L will read. The copy is taken right
// after the step that crossed L: a step runs at most Tmax tokens and a ring holds window + Tmax
// - 1 slots, so those positions are still in the ring then. A request adopting the entry gets
// the full blocks and fresh copies of the ring blocks at their ring indices; slots of the copied
// blocks that hold other positions are never read before the request writes them.
#include <algorithm>

#include "core/hash.h"
#include "engine/scheduler.h"
#include "engine/token_stream.h"

namespace kiln {

namespace {

// Hash of every token up to the end of each block: chained, so equal hashes mean equal prefixes
// (up to collisions, which are checked against the stored tokens).
std::vector<uint64_t> BlockHashes(const std::vector<int32_t>& tokens, int64_t block_size, int64_t blocks) {
  std::vector<uint64_t> hashes;
  uint64_t previous = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    Hash64 hash;
    hash.Update(&previous, sizeof(previous));
    hash.Update(tokens.data() + b * block_size, static_cast<size_t>(block_size) * sizeof(int32_t));
    previous = hash.Digest();
    hashes.push_back(previous);
  }
  return hashes;
}

// The block table indices of a sliding group's ring that hold positions [L - window + 1, L).
std::vector<int64_t> RingBlocks(const KvGroup& group, int64_t block_size, int64_t length) {
  std::vector<int64_t> indices;
  for (int64_t p = std::max<int64_t>(0, length - group.window + 1); p < length; ++p) {
    const int64_t index = (p % group.capacity_positions) / block_size;
    if (std::find(indices.begin(), indices.end(), index) == indices.end()) indices.push_back(index);
  }
  return indices;
}

}  // namespace

// The prefix length a prompt is cached at: its last whole block before the last token (which
// always runs, since its logits pick the first new token).
static int64_t CachedLength(size_t prompt, int64_t block_size) {
  return prompt < 1 ? 0 : static_cast<int64_t>(prompt - 1) / block_size * block_size;
}

void Scheduler::AdoptCachedPrefix(Active& active) {
  const int64_t block = program_.kv_block_size;
  const int64_t blocks = CachedLength(active.request.prompt.size(), block) / block;
  if (blocks == 0 || prefixes_.empty()) return;
  const std::vector<uint64_t> hashes = BlockHashes(active.request.prompt, block, blocks);
  KvBlockPool& pool = runner_.pool();
  for (int64_t b = blocks; b >= 1; --b) {
    auto found = prefixes_.find(hashes[static_cast<size_t>(b - 1)]);
    if (found == prefixes_.end()) continue;
    PrefixEntry& entry = *found->second;
    const int64_t length = b * block;
    if (static_cast<int64_t>(entry.tokens.size()) != length ||
        !std::equal(entry.tokens.begin(), entry.tokens.end(), active.request.prompt.begin())) {
      continue;
    }
    // The ring copies need blocks of their own.
    for (size_t g = 0; g < entry.blocks.size(); ++g) {
      if (program_.kv_groups[g].window > 0 && pool.free_blocks(static_cast<int32_t>(g)) < static_cast<int64_t>(entry.blocks[g].size())) return;
    }
    for (size_t g = 0; g < entry.blocks.size(); ++g) {
      const int32_t group = static_cast<int32_t>(g);
      if (program_.kv_groups[g].window == 0) {
        for (const auto& [index, id] : entry.blocks[g]) active.sequence->Adopt(group, index, id);
        continue;
      }
      std::vector<int32_t> source, copy;
      for (const auto& [index, id] : entry.blocks[g]) {
        const int32_t fresh = *pool.Allocate(group);  // counted free above
        active.sequence->Adopt(group, index, fresh);
        pool.Release(group, fresh);  // the sequence holds it now
        source.push_back(id);
        copy.push_back(fresh);
      }
      if (!runner_.placed().CopyBlocks(group, source, copy).ok()) {
        active.sequence->Release();
        return;
      }
    }
    active.sequence->StartAt(length);
    active.fed = length;
    if (active.result.tokens.empty()) active.result.reused_tokens = length;
    prefix_lru_.splice(prefix_lru_.end(), prefix_lru_, entry.lru);
    return;
  }
}

Status Scheduler::CachePrefix(Active& active) {
  const int64_t block = program_.kv_block_size;
  const int64_t length = CachedLength(active.request.prompt.size(), block);
  if (length == 0) {
    active.prefix_cached = true;
    return Status::Ok();
  }
  if (active.fed < length) return Status::Ok();
  active.prefix_cached = true;
  const uint64_t hash = BlockHashes(active.request.prompt, block, length / block).back();
  if (auto found = prefixes_.find(hash); found != prefixes_.end()) {
    prefix_lru_.splice(prefix_lru_.end(), prefix_lru_, found->second->lru);
    return Status::Ok();
  }
  // Whole blocks of positions [0, length): the sequence must still hold them (it just crossed
  // `length` in this step, or adopted them).
  KvBlockPool& pool = runner_.pool();
  auto entry = std::make_unique<PrefixEntry>();
  entry->tokens.assign(active.request.prompt.begin(), active.request.prompt.begin() + length);
  entry->blocks.resize(program_.kv_groups.size());
  auto drop = [&]() {
    for (size_t g = 0; g < entry->blocks.size(); ++g) {
      for (const auto& [index, id] : entry->blocks[g]) pool.Release(static_cast<int32_t>(g), id);
    }
  };
  for (size_t g = 0; g < program_.kv_groups.size(); ++g) {
    const int32_t group = static_cast<int32_t>(g);
    const KvGroup& kv = program_.kv_groups[g];
    if (kv.window == 0) {
      for (int64_t index = 0; index < length / block; ++index) {
        const int32_t id = active.sequence->Block(group, index);
        pool.Retain(group, id);
        entry->blocks[g].emplace_back(index, id);
      }
      continue;
    }
    std::vector<int32_t> source, copy;
    for (int64_t index : RingBlocks(kv, block, length)) {
      Result<int32_t> fresh = pool.Allocate(group);
      if (!fresh.has_value()) {  // no room to keep the ring: this prefix is not cached
        for (int32_t id : copy) pool.Release(group, id);
        drop();
        return Status::Ok();
      }
      source.push_back(active.sequence->Block(group, index));
      copy.push_back(*fresh);
      entry->blocks[g].emplace_back(index, *fresh);
    }
    TRY(runner_.placed().CopyBlocks(group, source, copy));
  }
  prefix_lru_.push_back(hash);
  entry->lru = std::prev(prefix_lru_.end());
  prefixes_.emplace(hash, std::move(entry));
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.cached_blocks = 0;
  for (const auto& [key, cached] : prefixes_) {
    for (const auto& group : cached->blocks) stats_.cached_blocks += static_cast<int64_t>(group.size());
  }
  return Status::Ok();
}

bool Scheduler::EvictOne() {
  if (prefix_lru_.empty()) return false;
  const uint64_t hash = prefix_lru_.front();
  prefix_lru_.pop_front();
  auto found = prefixes_.find(hash);
  if (found != prefixes_.end()) {
    for (size_t g = 0; g < found->second->blocks.size(); ++g) {
      for (const auto& [index, id] : found->second->blocks[g]) runner_.pool().Release(static_cast<int32_t>(g), id);
    }
    prefixes_.erase(found);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.cached_blocks = 0;
  for (const auto& [key, cached] : prefixes_) {
    for (const auto& group : cached->blocks) stats_.cached_blocks += static_cast<int64_t>(group.size());
  }
  return true;
}

}  // namespace kiln
