// Test support for speculative decoding: random requests, each generated alone and plainly on a
// one-sequence model (the expected tokens), then run together through a Scheduler.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <random>
#include <vector>

#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/scheduler.h"

namespace kiln::testing {

inline GenerationResult GenerateAlone(LoadedModel& model, const std::vector<int32_t>& prompt, const GenerateOptions& options) {
  auto session = model.NewSession();
  EXPECT_TRUE(session.has_value());
  if (!session.has_value()) return {};
  Generator generator(*session, nullptr);
  auto result = generator.Generate(prompt, options);
  EXPECT_TRUE(result.has_value()) << result.error().ToString();
  return result.has_value() ? std::move(*result) : GenerationResult{};
}

struct ScheduledCase {
  std::vector<int32_t> prompt;
  GenerateOptions options;
  std::vector<int32_t> expected;  // the plain solo run's tokens
  std::optional<Result<GenerationResult>> got;
};

// `count` requests with random prompts of 3-22 tokens and `min_tokens` + up to `spread` new
// tokens, every third one sampled at 0.8 (seeded), the others greedy; each expected from a plain
// run on `solo`. Then `speculate(i, options)` sets request i's speculative options.
inline std::vector<ScheduledCase> RandomCases(LoadedModel& solo, size_t count, uint32_t seed, int64_t min_tokens, int64_t spread,
                                              const std::function<void(size_t, GenerateOptions&)>& speculate) {
  std::mt19937 rng(seed);
  std::vector<ScheduledCase> cases(count);
  for (size_t i = 0; i < cases.size(); ++i) {
    ScheduledCase& c = cases[i];
    const int length = 3 + static_cast<int>(rng() % 20);
    for (int t = 0; t < length; ++t) c.prompt.push_back(2 + static_cast<int32_t>(rng() % 500));
    c.options.max_new_tokens = min_tokens + static_cast<int64_t>(rng() % static_cast<uint32_t>(spread));
    c.options.ignore_eos = true;
    c.options.sampling.temperature = i % 3 == 2 ? 0.8f : 0.0f;
    c.options.sampling.seed = i;
    c.expected = GenerateAlone(solo, c.prompt, c.options).tokens;
    speculate(i, c.options);
  }
  return cases;
}

// Submits every case and runs the scheduler until idle; each case's result lands in `got`.
inline void RunScheduled(Scheduler& scheduler, std::vector<ScheduledCase>& cases) {
  for (ScheduledCase& c : cases) {
    Request request;
    request.prompt = c.prompt;
    request.options = c.options;
    request.on_done = [&c](RequestId, Result<GenerationResult> result) { c.got = std::move(result); };
    ASSERT_TRUE(scheduler.Submit(std::move(request)).has_value());
  }
  ASSERT_TRUE(scheduler.RunUntilIdle().ok());
}

}  // namespace kiln::testing
