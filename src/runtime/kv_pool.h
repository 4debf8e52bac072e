// The KV block pool's bookkeeping, and a sequence as a handle on it.
//
// The backend owns the pool's memory (PlacedModel); this is the host-side ledger of which block
// belongs to whom. Blocks are counted per KV group (sliding layers, full layers): a block id of a
// group addresses block_size slots in every layer of that group. A block may be held by several
// sequences at once (a shared prompt prefix), so blocks are reference counted; a block returns to
// the free list when its last holder lets go.
//
// A Sequence holds one block table row (Program::block_table_stride() entries, -1 where no block
// is held yet), its length and how far it has written. Reserve() takes the blocks that positions
// up to some end need: a full layer's slot is its position, so full layers grow block by block up
// to the context; a sliding layer's slot is the position modulo the ring (window + Tmax - 1), so a
// sequence never holds more than that many slots of a sliding layer.
//
// Not thread-safe: one thread drives a pool and its sequences (the scheduler's).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "compiler/program.h"
#include "core/status.h"

namespace kiln {

class KvBlockPool {
 public:
  KvBlockPool(const Program& program, std::vector<int64_t> blocks_per_group);

  // kOutOfMemory when the group has no free block (nothing changes).
  Result<int32_t> Allocate(int32_t group);
  void Retain(int32_t group, int32_t block);
  void Release(int32_t group, int32_t block);
  int32_t RefCount(int32_t group, int32_t block) const { return refs_[static_cast<size_t>(group)][static_cast<size_t>(block)]; }

  int64_t free_blocks(int32_t group) const { return static_cast<int64_t>(free_[static_cast<size_t>(group)].size()); }
  int64_t total_blocks(int32_t group) const { return static_cast<int64_t>(refs_[static_cast<size_t>(group)].size()); }
  int32_t num_groups() const { return static_cast<int32_t>(refs_.size()); }
  // True when every block of every group is free: nothing leaked.
  bool AllFree() const;
  const Program& program() const { return *program_; }

 private:
  const Program* program_;
  std::vector<std::vector<int32_t>> free_;  // per group, a stack of free block ids
  std::vector<std::vector<int32_t>> refs_;  // per group, holders of each block
};

class Sequence {
 public:
  explicit Sequence(KvBlockPool& pool);
  ~Sequence() { Release(); }
  Sequence(Sequence&& other) noexcept;
  Sequence& operator=(Sequence&& other) noexcept;
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  // Blocks for every slot that positions [0, end) use. kOutOfMemory when the pool runs out (the
  // blocks taken so far stay held, so a retry after other sequences finish continues); kOutOfRange
  // past the context.
  Status Reserve(int64_t end);
  // Blocks Reserve(end) would still take, per group.
  std::vector<int64_t> BlocksNeeded(int64_t end) const;
  // Returns every block to the pool and forgets the sequence.
  void Release();

  // After a step wrote positions [length, length + count).
  void Advance(int64_t count);
  // Truncates to the first `length` positions, keeping their cache (see CanRewind).
  Status Rewind(int64_t length);
  // A full layer holds every position, so any length <= length() works. A sliding layer's ring
  // holds only the last capacity positions ever written: rewinding to L needs positions
  // [max(0, L - window + 1), L) still in the ring, i.e. not overwritten by a later position.
  bool CanRewind(int64_t length) const;
  // Marks positions up to `end` as written (pipelined steps that ran past a stop).
  void MarkWritten(int64_t end) { written_end_ = std::max(written_end_, end); }

  // Prefix caching: places `block` (retained here) at entry `index` of group `group`'s table of
  // this empty sequence, then StartAt(length) declares positions [0, length) present.
  void Adopt(int32_t group, int64_t index, int32_t block);
  void StartAt(int64_t length) { length_ = written_end_ = length; }

  int64_t length() const { return length_; }
  int64_t written_end() const { return written_end_; }
  std::span<const int32_t> block_table() const { return table_; }
  int32_t Block(int32_t group, int64_t index) const;
  KvBlockPool& pool() const { return *pool_; }

 private:
  int64_t SlotsUsed(const KvGroup& group, int64_t end) const;

  KvBlockPool* pool_;
  std::vector<int32_t> table_;
  int64_t length_ = 0;
  int64_t written_end_ = 0;  // 1 + the furthest position written since the sequence started
};

}  // namespace kiln
