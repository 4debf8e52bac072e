#include "runtime/kv_pool.h"

#include <algorithm>

#include "runtime/backend.h"

namespace kiln {

KvPoolSize KvPoolSize::ForSequences(const Program& program, int64_t sequences) {
  KvPoolSize size;
  for (const KvGroup& group : program.kv_groups) size.blocks.push_back(group.blocks_per_sequence * sequences);
  return size;
}

int64_t KvPoolSize::bytes(const Program& program) const {
  int64_t total = 0;
  for (size_t g = 0; g < blocks.size() && g < program.kv_groups.size(); ++g) total += blocks[g] * program.kv_groups[g].block_bytes;
  return total;
}

KvBlockPool::KvBlockPool(const Program& program, std::vector<int64_t> blocks_per_group) : program_(&program) {
  blocks_per_group.resize(program.kv_groups.size(), 0);
  for (int64_t count : blocks_per_group) {
    std::vector<int32_t> stack(static_cast<size_t>(count));
    // Lowest ids on top: a fresh pool hands out blocks 0, 1, 2, ... in order.
    for (int64_t i = 0; i < count; ++i) stack[static_cast<size_t>(i)] = static_cast<int32_t>(count - 1 - i);
    free_.push_back(std::move(stack));
    refs_.emplace_back(static_cast<size_t>(count), 0);
  }
}

Result<int32_t> KvBlockPool::Allocate(int32_t group) {
  std::vector<int32_t>& free = free_[static_cast<size_t>(group)];
  if (free.empty()) {
    return Error(ErrorCode::kOutOfMemory, "the KV pool has no free block in group " + std::to_string(group) + " (" +
                                              std::to_string(total_blocks(group)) + " blocks)");
  }
  const int32_t block = free.back();
  free.pop_back();
  refs_[static_cast<size_t>(group)][static_cast<size_t>(block)] = 1;
  return block;
}

void KvBlockPool::Retain(int32_t group, int32_t block) { ++refs_[static_cast<size_t>(group)][static_cast<size_t>(block)]; }

void KvBlockPool::Release(int32_t group, int32_t block) {
  int32_t& refs = refs_[static_cast<size_t>(group)][static_cast<size_t>(block)];
  if (refs > 0 && --refs == 0) free_[static_cast<size_t>(group)].push_back(block);
}

bool KvBlockPool::AllFree() const {
  for (size_t g = 0; g < refs_.size(); ++g) {
    if (free_[g].size() != refs_[g].size()) return false;
  }
  return true;
}

Sequence::Sequence(KvBlockPool& pool)
    : pool_(&pool), table_(static_cast<size_t>(pool.program().block_table_stride()), -1) {}

Sequence::Sequence(Sequence&& other) noexcept
    : pool_(other.pool_), table_(std::move(other.table_)), length_(other.length_), written_end_(other.written_end_) {
  other.table_.assign(table_.size(), -1);
  other.length_ = other.written_end_ = 0;
}

Sequence& Sequence::operator=(Sequence&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = other.pool_;
    table_ = std::move(other.table_);
    length_ = other.length_;
    written_end_ = other.written_end_;
    other.table_.assign(table_.size(), -1);
    other.length_ = other.written_end_ = 0;
  }
  return *this;
}

int64_t Sequence::SlotsUsed(const KvGroup& group, int64_t end) const {
  return group.window > 0 ? std::min(end, group.capacity_positions) : end;
}

int32_t Sequence::Block(int32_t group, int64_t index) const {
  return table_[static_cast<size_t>(pool_->program().BlockTableOffset(group) + index)];
}

std::vector<int64_t> Sequence::BlocksNeeded(int64_t end) const {
  const Program& program = pool_->program();
  std::vector<int64_t> needed;
  int64_t offset = 0;
  for (const KvGroup& group : program.kv_groups) {
    const int64_t blocks = (SlotsUsed(group, end) + program.kv_block_size - 1) / program.kv_block_size;
    int64_t missing = 0;
    for (int64_t b = 0; b < std::min(blocks, group.blocks_per_sequence); ++b) missing += table_[static_cast<size_t>(offset + b)] < 0;
    needed.push_back(missing);
    offset += group.blocks_per_sequence;
  }
  return needed;
}

Status Sequence::Reserve(int64_t end) {
  const Program& program = pool_->program();
  if (end > program.max_context) {
    return Error(ErrorCode::kOutOfRange, "sequence of " + std::to_string(end) + " tokens exceeds the context of " +
                                             std::to_string(program.max_context) + " tokens; raise --ctx or shorten the prompt");
  }
  int64_t offset = 0;
  for (size_t g = 0; g < program.kv_groups.size(); ++g) {
    const KvGroup& group = program.kv_groups[g];
    const int64_t blocks = std::min(group.blocks_per_sequence, (SlotsUsed(group, end) + program.kv_block_size - 1) / program.kv_block_size);
    for (int64_t b = 0; b < blocks; ++b) {
      int32_t& entry = table_[static_cast<size_t>(offset + b)];
      if (entry < 0) {
        TRY_ASSIGN(entry, pool_->Allocate(static_cast<int32_t>(g)));
      }
    }
    offset += group.blocks_per_sequence;
  }
  return Status::Ok();
}

void Sequence::Release() {
  if (!pool_) return;
  const Program& program = pool_->program();
  int64_t offset = 0;
  for (size_t g = 0; g < program.kv_groups.size() && !table_.empty(); ++g) {
    for (int64_t b = 0; b < program.kv_groups[g].blocks_per_sequence; ++b) {
      int32_t& entry = table_[static_cast<size_t>(offset + b)];
      if (entry >= 0) pool_->Release(static_cast<int32_t>(g), entry);
      entry = -1;
    }
    offset += program.kv_groups[g].blocks_per_sequence;
  }
  length_ = written_end_ = 0;
}

void Sequence::Advance(int64_t count) {
  length_ += count;
  written_end_ = std::max(written_end_, length_);
}

bool Sequence::CanRewind(int64_t length) const {
  if (length < 0 || length > length_) return false;
  if (length == 0) return true;
  for (const KvGroup& group : pool_->program().kv_groups) {
    if (group.window <= 0) continue;
    // Slot p % capacity still holds position p iff no position p + capacity was written.
    const int64_t first_needed = std::max<int64_t>(0, length - group.window + 1);
    if (first_needed < written_end_ - group.capacity_positions) return false;
  }
  return true;
}

Status Sequence::Rewind(int64_t length) {
  if (length < 0 || length > length_) {
    return Error(ErrorCode::kOutOfRange, "cannot rewind to " + std::to_string(length) + " positions: the sequence holds " +
                                             std::to_string(length_));
  }
  if (!CanRewind(length)) {
    return Error(ErrorCode::kOutOfRange, "cannot rewind to " + std::to_string(length) +
                                             " positions: the sliding-window cache no longer holds the window before it "
                                             "(positions up to " + std::to_string(written_end_) +
                                             " were written); prefill again from an earlier point");
  }
  length_ = length;
  if (length == 0) written_end_ = 0;  // nothing kept: the ring starts over
  return Status::Ok();
}

void Sequence::Adopt(int32_t group, int64_t index, int32_t block) {
  int32_t& entry = table_[static_cast<size_t>(pool_->program().BlockTableOffset(group) + index)];
  if (entry >= 0) pool_->Release(group, entry);
  pool_->Retain(group, block);
  entry = block;
}

}  // namespace kiln
