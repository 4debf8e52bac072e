// The KV block pool and sequences on a real program: how many blocks a sequence holds per group
// (a sliding ring never more than window + Tmax - 1 slots, full layers block by block up to the
// context), reference counts, exhaustion, rewinding, and the batch bounds of the Runner.
#include <gtest/gtest.h>

#include "engine/model_loader.h"

namespace kiln {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

std::unique_ptr<LoadedModel> Load(int64_t chunk, int64_t sequences, int64_t block) {
  LoadOptions options;
  options.max_tokens = chunk;
  options.max_sequences = sequences;
  options.max_context = 64;
  options.kv_block_size = block;
  options.num_threads = 1;
  auto model = LoadedModel::Load(FixtureDir("g31b"), options);  // sliding window 6
  EXPECT_TRUE(model.has_value()) << model.error().ToString();
  return model.has_value() ? std::move(*model) : nullptr;
}

int64_t Held(const Sequence& sequence, int32_t group) {
  const Program& program = sequence.pool().program();
  int64_t held = 0;
  for (int64_t i = 0; i < program.kv_groups[static_cast<size_t>(group)].blocks_per_sequence; ++i) held += sequence.Block(group, i) >= 0;
  return held;
}

TEST(KvPoolTest, GroupsAndStepBoundsOfTheProgram) {
  auto model = Load(/*chunk=*/8, /*sequences=*/4, /*block=*/4);
  ASSERT_TRUE(model);
  const Program& program = model->program();
  ASSERT_EQ(program.kv_groups.size(), 2u);
  const KvGroup& sliding = program.kv_groups[0];
  const KvGroup& full = program.kv_groups[1];
  EXPECT_EQ(sliding.window, 6);
  EXPECT_EQ(sliding.capacity_positions, 6 + 8 - 1);
  EXPECT_EQ(sliding.blocks_per_sequence, 4);  // 13 slots in blocks of 4
  EXPECT_EQ(full.window, 0);
  EXPECT_EQ(full.capacity_positions, 64);
  EXPECT_EQ(full.blocks_per_sequence, 16);
  EXPECT_EQ(program.block_table_stride(), 20);
  // Three step functions, each planned and verified at its own bounds.
  ASSERT_NE(program.FindStep("decode"), nullptr);
  EXPECT_EQ(program.FindStep("decode")->max_tokens, 4);
  EXPECT_EQ(program.FindStep("decode")->max_rows, 4);
  EXPECT_EQ(program.FindStep("prefill")->max_tokens, 8);
  EXPECT_EQ(program.FindStep("prefill")->max_rows, 4);
  EXPECT_EQ(program.FindStep("score")->max_rows, 8);
  EXPECT_TRUE(VerifyProgram(program, program.arena_bytes).ok());
}

TEST(KvPoolTest, ASlidingRingNeverGrowsPastWindowPlusChunk) {
  auto model = Load(8, 1, 4);
  ASSERT_TRUE(model);
  auto runner = model->NewRunner();
  ASSERT_TRUE(runner.has_value());
  Sequence sequence((*runner)->pool());
  std::vector<float> logits(static_cast<size_t>((*runner)->vocab_size()));
  for (int32_t t = 0; t < 60; ++t) {
    const int32_t id = 3 + t % 50;
    const BatchEntry entry{&sequence, std::span<const int32_t>(&id, 1)};
    ASSERT_TRUE((*runner)->Run(std::span<const BatchEntry>(&entry, 1), logits).ok());
    // Full layers: one block per 4 positions so far; sliding: at most the ring's 4 blocks.
    EXPECT_EQ(Held(sequence, 1), (t + 1 + 3) / 4) << "after position " << t;
    EXPECT_LE(Held(sequence, 0), 4) << "after position " << t;
  }
  EXPECT_EQ(Held(sequence, 0), 4);
  // The ring still holds the window before position 58, not before 40.
  EXPECT_TRUE(sequence.CanRewind(58));
  EXPECT_FALSE(sequence.CanRewind(40));
  Status rewound = sequence.Rewind(40);
  ASSERT_FALSE(rewound.ok());
  EXPECT_EQ(rewound.error().code(), ErrorCode::kOutOfRange);
  EXPECT_TRUE(sequence.Rewind(0).ok());
  sequence.Release();
  EXPECT_TRUE((*runner)->pool().AllFree());
}

TEST(KvPoolTest, BlocksAreCountedAndAnEmptyPoolSaysSo) {
  auto model = Load(8, 2, 4);
  ASSERT_TRUE(model);
  KvBlockPool pool(model->program(), {4, 3});
  auto a = pool.Allocate(1);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, 0);  // a fresh pool hands out the lowest ids first
  pool.Retain(1, *a);
  EXPECT_EQ(pool.RefCount(1, *a), 2);
  pool.Release(1, *a);
  EXPECT_EQ(pool.free_blocks(1), 2);
  pool.Release(1, *a);
  EXPECT_EQ(pool.free_blocks(1), 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool.Allocate(1).has_value());
  auto none = pool.Allocate(1);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), ErrorCode::kOutOfMemory);
  EXPECT_EQ(none.error().message(), "the KV pool has no free block in group 1 (3 blocks)");

  // A sequence reserving past the pool keeps what it got; one past the context is refused.
  KvBlockPool small(model->program(), {4, 2});
  Sequence sequence(small);
  Status reserved = sequence.Reserve(12);
  EXPECT_EQ(reserved.error().code(), ErrorCode::kOutOfMemory);
  EXPECT_EQ(small.free_blocks(1), 0);
  EXPECT_EQ(sequence.Reserve(65).error().code(), ErrorCode::kOutOfRange);
  sequence.Release();
  EXPECT_TRUE(small.AllFree());
}

TEST(KvPoolTest, TheRunnerRefusesBatchesPastItsBounds) {
  auto model = Load(8, 2, 4);
  ASSERT_TRUE(model);
  auto runner = model->NewRunner();
  ASSERT_TRUE(runner.has_value());
  Sequence a((*runner)->pool()), b((*runner)->pool()), c((*runner)->pool());
  const std::vector<int32_t> nine(9, 5), one(1, 5);
  std::vector<float> logits(static_cast<size_t>(3 * (*runner)->vocab_size()));
  auto run = [&](std::vector<BatchEntry> batch) {
    return (*runner)->Run(batch, std::span<float>(logits.data(), Runner::LogitRows(batch) * static_cast<size_t>((*runner)->vocab_size())));
  };
  Status three = run({{&a, one}, {&b, one}, {&c, one}});
  EXPECT_EQ(three.error().message(), "step of 3 sequences exceeds the bound of 2 the program was compiled for (--parallel)");
  Status long_step = run({{&a, nine}});
  EXPECT_EQ(long_step.error().message(), "step of 9 tokens exceeds the chunk bound 8; split the prompt into chunks");
  Status twice = run({{&a, one}, {&a, one}});
  EXPECT_EQ(twice.error().message(), "a sequence appears twice in one step");
  KvBlockPool other_pool(model->program(), {4, 16});
  Sequence stranger(other_pool);
  EXPECT_EQ(run({{&stranger, one}}).error().message(), "batch entry 0 is not a sequence of this model");
  EXPECT_EQ(a.length(), 0);  // nothing ran
  EXPECT_TRUE(run({{&a, one}, {&b, std::vector<int32_t>(7, 6)}}).ok());
  EXPECT_EQ(a.length(), 1);
  EXPECT_EQ(b.length(), 7);
}

}  // namespace
}  // namespace kiln
