#include "compiler/memory_planner.h"

#include <gtest/gtest.h>

#include <random>

namespace kiln {
namespace {

TEST(MemoryPlannerTest, ReusesBytesOfDeadTensors) {
  // a [0,1] and b [1,2] overlap at step 1; c [2,3] may reuse a's bytes.
  const BufferRequest requests[] = {{/*size_bytes=*/64, 0, 1}, {64, 1, 2}, {64, 2, 3}};
  MemoryPlan plan = PlanMemory(requests, /*alignment=*/64);
  EXPECT_EQ(plan.arena_bytes, 128);  // two live at a time: 2 x 64
  EXPECT_EQ(LowerBoundBytes(requests), 128);
  EXPECT_TRUE(VerifyPlan(requests, plan, 64, plan.arena_bytes).ok());
  EXPECT_EQ(plan.offsets_bytes[0], plan.offsets_bytes[2]);
}

TEST(MemoryPlannerTest, AlignsOffsets) {
  // 10 bytes then 10 bytes live together: the second starts at 64, arena 128.
  const BufferRequest requests[] = {{10, 0, 1}, {10, 0, 1}};
  MemoryPlan plan = PlanMemory(requests, 64);
  EXPECT_EQ(plan.arena_bytes, 128);
  EXPECT_TRUE(VerifyPlan(requests, plan, 64, plan.arena_bytes).ok());
}

TEST(MemoryPlannerTest, VerifierCatchesEveryViolation) {
  const BufferRequest requests[] = {{64, 0, 1}, {64, 1, 2}};
  MemoryPlan overlapping{{0, 0}, 128};
  Status overlap = VerifyPlan(requests, overlapping, 64, 128);
  ASSERT_FALSE(overlap.ok());
  EXPECT_EQ(overlap.error().message(),
            "tensors 0 and 1 are live together (steps 0-1 and 1-2) and overlap in the arena");
  MemoryPlan outside{{0, 64}, 128};
  Status too_small = VerifyPlan(requests, outside, 64, /*arena_bytes=*/100);
  ASSERT_FALSE(too_small.ok());
  EXPECT_EQ(too_small.error().message(), "tensor 1 at offset 64 + size 64 exceeds the arena of 100 bytes");
  MemoryPlan misaligned{{0, 96}, 192};
  Status unaligned = VerifyPlan(requests, misaligned, 64, 192);
  ASSERT_FALSE(unaligned.ok());
  EXPECT_EQ(unaligned.error().message(), "tensor 1 offset 96 is not a multiple of the alignment 64");
}

// Property test: random lifetimes and sizes, as a graph's tensors have. Every plan verifies,
// never beats the lower bound, and greedy-by-size stays close to it.
TEST(MemoryPlannerTest, RandomGraphsVerify) {
  std::mt19937_64 rng(1234);
  double worst_ratio = 0.0;
  for (int trial = 0; trial < 300; ++trial) {
    const int steps = 1 + static_cast<int>(rng() % 60);
    const int count = 1 + static_cast<int>(rng() % 120);
    std::vector<BufferRequest> requests;
    for (int i = 0; i < count; ++i) {
      const int32_t first = static_cast<int32_t>(rng() % static_cast<uint64_t>(steps));
      const int32_t last = first + static_cast<int32_t>(rng() % 6);
      // Sizes spanning four orders of magnitude, as activations and scratch do.
      const int64_t size = static_cast<int64_t>(1 + rng() % 64) << (rng() % 14);
      requests.push_back({size, first, last});
    }
    for (PlannerKind kind : {PlannerKind::kGreedyBySize, PlannerKind::kLinear}) {
      MemoryPlan plan = PlanMemory(requests, 64, kind);
      Status verified = VerifyPlan(requests, plan, 64, plan.arena_bytes);
      ASSERT_TRUE(verified.ok()) << "trial " << trial << ": " << verified.ToString();
      const int64_t lower = LowerBoundBytes(requests);
      ASSERT_GE(plan.arena_bytes, lower);
      if (kind == PlannerKind::kGreedyBySize) {
        worst_ratio = std::max(worst_ratio, static_cast<double>(plan.arena_bytes) / static_cast<double>(lower));
      }
    }
  }
  // Random interval graphs are harder than real step functions; still bounded.
  EXPECT_LT(worst_ratio, 2.0);
}

}  // namespace
}  // namespace kiln
