#include "compiler/memory_planner.h"

#include <algorithm>
#include <numeric>

namespace kiln {

namespace {
int64_t AlignUp(int64_t value, int64_t alignment) { return (value + alignment - 1) / alignment * alignment; }
bool LifetimesOverlap(const BufferRequest& a, const BufferRequest& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}
}  // namespace

MemoryPlan PlanMemory(std::span<const BufferRequest> requests, int64_t alignment, PlannerKind kind) {
  MemoryPlan plan;
  plan.offsets_bytes.assign(requests.size(), 0);
  if (kind == PlannerKind::kLinear) {
    int64_t next = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      plan.offsets_bytes[i] = next;
      next = AlignUp(next + requests[i].size_bytes, alignment);
    }
    plan.arena_bytes = next;
    return plan;
  }
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  // Largest first; ties by earlier first use so the plan is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (requests[a].size_bytes != requests[b].size_bytes) return requests[a].size_bytes > requests[b].size_bytes;
    return requests[a].first_step < requests[b].first_step;
  });
  std::vector<size_t> placed;
  std::vector<std::pair<int64_t, int64_t>> conflicts;  // [offset, end) of overlapping placed ones
  for (size_t index : order) {
    const BufferRequest& request = requests[index];
    conflicts.clear();
    for (size_t other : placed) {
      if (LifetimesOverlap(request, requests[other])) {
        conflicts.emplace_back(plan.offsets_bytes[other], plan.offsets_bytes[other] + requests[other].size_bytes);
      }
    }
    std::sort(conflicts.begin(), conflicts.end());
    int64_t candidate = 0;
    for (const auto& [begin, end] : conflicts) {
      if (candidate + request.size_bytes <= begin) break;  // fits in the gap before this one
      candidate = std::max(candidate, AlignUp(end, alignment));
    }
    plan.offsets_bytes[index] = candidate;
    plan.arena_bytes = std::max(plan.arena_bytes, AlignUp(candidate + request.size_bytes, alignment));
    placed.push_back(index);
  }
  return plan;
}

int64_t LowerBoundBytes(std::span<const BufferRequest> requests) {
  int32_t last = 0;
  for (const BufferRequest& r : requests) last = std::max(last, r.last_step);
  std::vector<int64_t> live(static_cast<size_t>(last) + 2, 0);
  // Difference array over steps: +size at first_step, -size after last_step.
  for (const BufferRequest& r : requests) {
    live[static_cast<size_t>(r.first_step)] += r.size_bytes;
    live[static_cast<size_t>(r.last_step) + 1] -= r.size_bytes;
  }
  int64_t running = 0, peak = 0;
  for (int64_t delta : live) {
    running += delta;
    peak = std::max(peak, running);
  }
  return peak;
}

Status VerifyPlan(std::span<const BufferRequest> requests, const MemoryPlan& plan, int64_t alignment,
                  int64_t arena_bytes) {
  auto fail = [](const std::string& what) { return Error(ErrorCode::kPlanInvalid, what); };
  if (plan.offsets_bytes.size() != requests.size()) {
    return fail("plan has " + std::to_string(plan.offsets_bytes.size()) + " offsets for " +
                std::to_string(requests.size()) + " tensors");
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    const int64_t offset = plan.offsets_bytes[i], size = requests[i].size_bytes;
    if (size < 0 || requests[i].first_step > requests[i].last_step) {
      return fail("tensor " + std::to_string(i) + " has a negative size or an empty lifetime");
    }
    if (offset < 0 || offset % alignment != 0) {
      return fail("tensor " + std::to_string(i) + " offset " + std::to_string(offset) +
                  " is not a multiple of the alignment " + std::to_string(alignment));
    }
    if (offset > arena_bytes || size > arena_bytes - offset) {
      return fail("tensor " + std::to_string(i) + " at offset " + std::to_string(offset) + " + size " +
                  std::to_string(size) + " exceeds the arena of " + std::to_string(arena_bytes) + " bytes");
    }
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    for (size_t j = i + 1; j < requests.size(); ++j) {
      if (requests[i].size_bytes == 0 || requests[j].size_bytes == 0) continue;
      const bool live_together = requests[i].first_step <= requests[j].last_step &&
                                 requests[j].first_step <= requests[i].last_step;
      const bool disjoint = plan.offsets_bytes[i] + requests[i].size_bytes <= plan.offsets_bytes[j] ||
                            plan.offsets_bytes[j] + requests[j].size_bytes <= plan.offsets_bytes[i];
      if (live_together && !disjoint) {
        return fail("tensors " + std::to_string(i) + " and " + std::to_string(j) +
                    " are live together (steps " + std::to_string(requests[i].first_step) + "-" +
                    std::to_string(requests[i].last_step) + " and " + std::to_string(requests[j].first_step) +
                    "-" + std::to_string(requests[j].last_step) + ") and overlap in the arena");
      }
    }
  }
  return Status::Ok();
}

}  // namespace kiln
