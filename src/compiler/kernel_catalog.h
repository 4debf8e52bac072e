// What the compiler asks of a target: does it run this op, how much scratch does the op's kernel
// need at the given bounds, and what alignment do its tensors need. Each backend implements it;
// the compiler knows no backend.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "graph/graph.h"

namespace kiln {

class KernelCatalog {
 public:
  virtual ~KernelCatalog() = default;
  virtual std::string target_name() const = 0;
  virtual int64_t alignment_bytes() const = 0;
  // kUnsupported naming the op and the reason when the target cannot run it.
  virtual Status CheckOp(const Graph& graph, const Op& op) const = 0;
  // Scratch bytes the op's kernel needs for a step of up to `max_tokens` tokens.
  virtual int64_t ScratchBytes(const Graph& graph, const Op& op, int64_t max_tokens,
                               int64_t max_context) const = 0;
  // The op chains the target runs as one kernel: element i is how many ops, from op i on, one
  // kernel runs (1: the op alone); empty: none. The planner keeps every value such a group reads
  // or writes alive across the whole group, so a fused kernel may still read its inputs while it
  // writes its outputs.
  virtual std::vector<int32_t> FusedGroups(const Graph& /*graph*/) const { return {}; }
  // The KV cache element type for a graph with its weights bound (their dtypes known).
  virtual DType CacheDType(const Graph& /*graph*/) const { return DType::kF32; }
};

}  // namespace kiln
