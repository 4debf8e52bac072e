#include "engine/prefix_cache.h"

#include <algorithm>

#include "core/hash.h"

namespace kiln {

namespace {

// Hash of every token up to the end of each block: chained, so equal hashes mean equal prefixes
// (up to collisions, which are checked against the stored tokens).
std::vector<uint64_t> BlockHashes(std::span<const int32_t> tokens, int64_t block_size, int64_t blocks) {
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

PrefixCache::PrefixCache(Runner& runner) : runner_(runner), program_(runner.program()) {
  // Caching a prefix of a model with sliding layers copies ring blocks.
  for (const KvGroup& group : program_.kv_groups) {
    if (group.window > 0 && !runner_.placed().SupportsCopyBlocks()) enabled_ = false;
  }
}

PrefixCache::~PrefixCache() {
  while (EvictOne()) {
  }
}

int64_t PrefixCache::CachedLength(size_t prompt_tokens) const {
  const int64_t block = program_.kv_block_size;
  return prompt_tokens < 1 ? 0 : static_cast<int64_t>(prompt_tokens - 1) / block * block;
}

int64_t PrefixCache::Adopt(std::span<const int32_t> prompt, Sequence& sequence) {
  const int64_t block = program_.kv_block_size;
  const int64_t blocks = CachedLength(prompt.size()) / block;
  if (!enabled_ || blocks == 0 || entries_.empty()) return 0;
  const std::vector<uint64_t> hashes = BlockHashes(prompt, block, blocks);
  KvBlockPool& pool = runner_.pool();
  for (int64_t b = blocks; b >= 1; --b) {
    auto found = entries_.find(hashes[static_cast<size_t>(b - 1)]);
    if (found == entries_.end()) continue;
    Entry& entry = *found->second;
    const int64_t length = b * block;
    if (static_cast<int64_t>(entry.tokens.size()) != length || !std::equal(entry.tokens.begin(), entry.tokens.end(), prompt.begin())) {
      continue;
    }
    // The ring copies need blocks of their own.
    for (size_t g = 0; g < entry.blocks.size(); ++g) {
      if (program_.kv_groups[g].window > 0 && pool.free_blocks(static_cast<int32_t>(g)) < static_cast<int64_t>(entry.blocks[g].size())) return 0;
    }
    for (size_t g = 0; g < entry.blocks.size(); ++g) {
      const int32_t group = static_cast<int32_t>(g);
      if (program_.kv_groups[g].window == 0) {
        for (const auto& [index, id] : entry.blocks[g]) sequence.Adopt(group, index, id);
        continue;
      }
      std::vector<int32_t> source, copy;
      for (const auto& [index, id] : entry.blocks[g]) {
        const int32_t fresh = *pool.Allocate(group);  // counted free above
        sequence.Adopt(group, index, fresh);
        pool.Release(group, fresh);  // the sequence holds it now
        source.push_back(id);
        copy.push_back(fresh);
      }
      if (!runner_.placed().CopyBlocks(group, source, copy).ok()) {
        sequence.Release();
        return 0;
      }
    }
    sequence.StartAt(length);
    lru_.splice(lru_.end(), lru_, entry.lru);
    return length;
  }
  return 0;
}

Status PrefixCache::Insert(std::span<const int32_t> prompt, const Sequence& sequence) {
  const int64_t block = program_.kv_block_size;
  const int64_t length = CachedLength(prompt.size());
  if (!enabled_ || length == 0) return Status::Ok();
  const uint64_t hash = BlockHashes(prompt, block, length / block).back();
  if (auto found = entries_.find(hash); found != entries_.end()) {
    lru_.splice(lru_.end(), lru_, found->second->lru);
    return Status::Ok();
  }
  // Whole blocks of positions [0, length): the sequence must still hold them.
  KvBlockPool& pool = runner_.pool();
  auto entry = std::make_unique<Entry>();
  entry->tokens.assign(prompt.begin(), prompt.begin() + length);
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
        const int32_t id = sequence.Block(group, index);
        pool.Retain(group, id);
        entry->blocks[g].emplace_back(index, id);
      }
      continue;
    }
    std::vector<int32_t> source, copy;
    for (int64_t index : RingBlocks(kv, block, length)) {
      Result<int32_t> fresh = pool.Allocate(group);
      if (!fresh.has_value()) {  // no room to keep the ring: this prefix is not cached
        drop();  // the copies taken so far are in the entry's blocks too
        return Status::Ok();
      }
      source.push_back(sequence.Block(group, index));
      copy.push_back(*fresh);
      entry->blocks[g].emplace_back(index, *fresh);
    }
    if (Status copied = runner_.placed().CopyBlocks(group, source, copy); !copied.ok()) {
      drop();
      return copied;
    }
  }
  lru_.push_back(hash);
  entry->lru = std::prev(lru_.end());
  entries_.emplace(hash, std::move(entry));
  Count();
  return Status::Ok();
}

bool PrefixCache::EvictOne() {
  if (lru_.empty()) return false;
  const uint64_t hash = lru_.front();
  lru_.pop_front();
  if (auto found = entries_.find(hash); found != entries_.end()) {
    for (size_t g = 0; g < found->second->blocks.size(); ++g) {
      for (const auto& [index, id] : found->second->blocks[g]) runner_.pool().Release(static_cast<int32_t>(g), id);
    }
    entries_.erase(found);
  }
  Count();
  return true;
}

void PrefixCache::Count() {
  cached_blocks_ = 0;
  for (const auto& [hash, entry] : entries_) {
    for (const auto& group : entry->blocks) cached_blocks_ += static_cast<int64_t>(group.size());
  }
}

}  // namespace kiln
