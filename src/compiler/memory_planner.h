// The memory planner: places every intermediate tensor of a step function in one arena.
//
// Input: one BufferRequest per tensor — its size at the step's upper bounds (Tmax, Cmax) and its
// lifetime [first_step, last_step] (inclusive op indices). Output: an offset per request and the
// arena size. Two tensors may share bytes only if their lifetimes do not overlap.
//
// Greedy by size (as TFLite-Micro's planner): take requests from largest to smallest; for each,
// collect the already-placed requests whose lifetimes overlap it, sorted by offset, and put it in
// the first gap large enough (or after the last). Offsets are multiples of `alignment`.
// Quality is reported against a lower bound no plan can beat: the largest sum of sizes of
// simultaneously live tensors.
//
// VerifyPlan is the independent check: a brute-force O(n^2) pass that shares no logic with the
// planner. Every test and every load runs it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace kiln {

struct BufferRequest {
  int64_t size_bytes = 0;
  int32_t first_step = 0;  // op index that writes it first
  int32_t last_step = 0;   // op index that reads it last (inclusive)
};

struct MemoryPlan {
  std::vector<int64_t> offsets_bytes;  // one per request
  int64_t arena_bytes = 0;
};

enum class PlannerKind : uint8_t {
  kGreedyBySize = 0,  // the default
  kLinear = 1,        // every tensor its own bytes, in request order: a baseline to bisect bugs
};

MemoryPlan PlanMemory(std::span<const BufferRequest> requests, int64_t alignment,
                      PlannerKind kind = PlannerKind::kGreedyBySize);

// Largest sum of sizes live at one step.
int64_t LowerBoundBytes(std::span<const BufferRequest> requests);

// Proves the plan: every offset aligned, every range inside `arena_bytes`, and no two requests
// with overlapping lifetimes share a byte. kPlanInvalid names the first violation.
Status VerifyPlan(std::span<const BufferRequest> requests, const MemoryPlan& plan, int64_t alignment,
                  int64_t arena_bytes);

}  // namespace kiln
