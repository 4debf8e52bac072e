// Batched steps against solo runs, on every fixture variant: sequences of different lengths
// (prompts longer than the sliding window), prefill chunks and decode tokens in one step,
// sequences joining and leaving. Each sequence's logits must be those of its solo run within
// 1e-4 (f32 fixtures) and its greedy continuation identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "engine/model_loader.h"

namespace kiln {
namespace {

constexpr float kTolerance = 1e-4f;
constexpr int64_t kChunk = 8;       // Tmax: tokens per step over all sequences
constexpr int64_t kSequences = 4;   // Smax
constexpr int64_t kContext = 64;

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

std::unique_ptr<LoadedModel> Load(const std::string& dir, int64_t sequences, int64_t block_size = 4) {
  LoadOptions options;
  options.max_tokens = kChunk;
  options.max_sequences = sequences;
  options.max_context = kContext;
  options.kv_block_size = block_size;
  options.num_threads = 2;
  auto model = LoadedModel::Load(dir, options);
  EXPECT_TRUE(model.has_value()) << model.error().ToString();
  return model.has_value() ? std::move(*model) : nullptr;
}

int32_t ArgMax(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

struct Request {
  std::vector<int32_t> prompt;
  int64_t generate = 0;
  int64_t join_step = 0;  // the batched step at which it arrives
};

// Solo: the logits of every position of `tokens`, one sequence alone on its own placed model.
std::vector<float> SoloLogits(LoadedModel& model, const std::vector<int32_t>& tokens) {
  auto session = model.NewSession(2);
  EXPECT_TRUE(session.has_value()) << session.error().ToString();
  auto logits = session->Prefill(tokens, /*all_positions=*/true);
  EXPECT_TRUE(logits.has_value()) << logits.error().ToString();
  return logits.has_value() ? *logits : std::vector<float>{};
}

// Solo greedy continuation of `prompt` by `count` tokens.
std::vector<int32_t> SoloGreedy(LoadedModel& model, const std::vector<int32_t>& prompt, int64_t count) {
  auto session = model.NewSession(2);
  EXPECT_TRUE(session.has_value());
  std::vector<int32_t> tokens = prompt;
  auto logits = session->Prefill(prompt);
  EXPECT_TRUE(logits.has_value());
  for (int64_t i = 0; i < count && logits.has_value(); ++i) {
    const int32_t next = ArgMax(*logits);
    tokens.push_back(next);
    logits = session->Step(std::span<const int32_t>(&next, 1));
  }
  return tokens;
}

// Continuous batching by hand: each step takes one token of every decoding sequence, then as
// many prompt tokens of prefilling sequences as the step has room for. Every logit row produced
// is checked against the solo run; returns each request's tokens (prompt + greedy).
std::vector<std::vector<int32_t>> RunBatched(LoadedModel& model, const std::vector<Request>& requests,
                                             const std::vector<std::vector<float>>& solo, float* worst) {
  auto runner = model.NewRunner();
  EXPECT_TRUE(runner.has_value()) << runner.error().ToString();
  if (!runner.has_value()) return {};
  const int64_t vocab = (*runner)->vocab_size();
  struct Live {
    std::unique_ptr<Sequence> sequence;
    std::vector<int32_t> tokens;  // prompt, then generated
    int64_t fed = 0;              // tokens run so far
    bool done = false, joined = false;
  };
  std::vector<Live> live(requests.size());
  std::vector<float> logits;
  for (int64_t step = 0; step < 1000; ++step) {
    for (size_t i = 0; i < requests.size(); ++i) {
      if (!live[i].joined && requests[i].join_step <= step) {
        live[i].joined = true;
        live[i].sequence = std::make_unique<Sequence>((*runner)->pool());
        live[i].tokens = requests[i].prompt;
      }
    }
    std::vector<BatchEntry> batch;
    std::vector<size_t> owner;
    int64_t budget = kChunk;
    // Decoding sequences first (one token each), then prefill chunks.
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t i = 0; i < live.size() && budget > 0 && static_cast<int64_t>(batch.size()) < kSequences; ++i) {
        Live& l = live[i];
        if (!l.joined || l.done) continue;
        const int64_t pending = static_cast<int64_t>(l.tokens.size()) - l.fed;
        const bool decoding = l.fed >= static_cast<int64_t>(requests[i].prompt.size());
        if ((pass == 0) != decoding) continue;
        const int64_t take = std::min(pending, budget);
        batch.push_back({l.sequence.get(), std::span<const int32_t>(l.tokens.data() + l.fed, static_cast<size_t>(take))});
        owner.push_back(i);
        budget -= take;
      }
    }
    if (batch.empty()) {
      if (std::all_of(live.begin(), live.end(), [](const Live& l) { return l.done; })) break;
      continue;
    }
    logits.assign(batch.size() * static_cast<size_t>(vocab), 0.0f);
    Status ran = (*runner)->Run(batch, logits);
    EXPECT_TRUE(ran.ok()) << ran.error().ToString();
    if (!ran.ok()) return {};
    for (size_t b = 0; b < batch.size(); ++b) {
      Live& l = live[owner[b]];
      l.fed += static_cast<int64_t>(batch[b].tokens.size());
      const std::span<const float> row(logits.data() + b * static_cast<size_t>(vocab), static_cast<size_t>(vocab));
      if (l.fed < static_cast<int64_t>(requests[owner[b]].prompt.size())) continue;  // mid-prompt chunk
      // Row of position fed - 1 in the solo run.
      const std::vector<float>& reference = solo[owner[b]];
      const size_t offset = static_cast<size_t>(l.fed - 1) * static_cast<size_t>(vocab);
      if (offset + static_cast<size_t>(vocab) <= reference.size()) {
        for (int64_t v = 0; v < vocab; ++v) *worst = std::max(*worst, std::abs(row[static_cast<size_t>(v)] - reference[offset + static_cast<size_t>(v)]));
      }
      const int64_t generated = static_cast<int64_t>(l.tokens.size() - requests[owner[b]].prompt.size());
      if (generated < requests[owner[b]].generate) {
        l.tokens.push_back(ArgMax(row));
      } else {
        l.done = true;
        l.sequence->Release();  // leaves: its blocks go back at once
      }
    }
  }
  std::vector<std::vector<int32_t>> outputs;
  for (Live& l : live) outputs.push_back(l.tokens);
  live.clear();
  EXPECT_TRUE((*runner)->pool().AllFree()) << "blocks leaked";
  return outputs;
}

class BatchParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchParityTest, EverySequenceOfAMixedBatchMatchesItsSoloRun) {
  auto solo_model = Load(FixtureDir(GetParam()), 1);
  auto batch_model = Load(FixtureDir(GetParam()), kSequences);
  ASSERT_TRUE(solo_model && batch_model);
  const int64_t vocab = solo_model->architecture().vocab_size();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> id(3, static_cast<int32_t>(std::min<int64_t>(vocab, 500)) - 1);
  auto prompt = [&](int64_t length) {
    std::vector<int32_t> p(static_cast<size_t>(length));
    for (int32_t& t : p) t = id(rng);
    return p;
  };
  // The fixtures' sliding window is at most 8 positions: prompts of 13 and 21 tokens run past it
  // and wrap the ring (window + Tmax - 1 slots); the 1-token prompt decodes from its first step.
  std::vector<Request> requests = {
      {prompt(13), 6, 0}, {prompt(5), 9, 0}, {prompt(21), 4, 2}, {prompt(1), 7, 3}, {prompt(9), 5, 9}, {prompt(3), 3, 12},
  };
  std::vector<std::vector<float>> solo;
  std::vector<std::vector<int32_t>> expected;
  for (const Request& r : requests) {
    expected.push_back(SoloGreedy(*solo_model, r.prompt, r.generate));
    solo.push_back(SoloLogits(*solo_model, expected.back()));
  }
  float worst = 0.0f;
  const std::vector<std::vector<int32_t>> batched = RunBatched(*batch_model, requests, solo, &worst);
  EXPECT_LT(worst, kTolerance) << GetParam();
  ASSERT_EQ(batched.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(batched[i], expected[i]) << "request " << i;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchParityTest, ::testing::Values("e2b", "e4b", "g12b", "a26b", "g31b"));

}  // namespace
}  // namespace kiln
