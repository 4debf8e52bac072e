// The scheduler against solo runs: hundreds of requests with random lengths, cancellations and
// a pool small enough to force preemptions; the prefix cache against a fresh prefill; submitting
// from many threads; requests that can never run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <limits>
#include <thread>

#include "engine/model_loader.h"
#include "cpu_backend_with.h"
#include "engine/scheduler.h"
#include "synthetic_constraint.h"

namespace kiln {
namespace {

constexpr int64_t kChunk = 8;
constexpr int64_t kSequences = 4;
constexpr int64_t kContext = 64;

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

std::unique_ptr<LoadedModel> Load(const std::string& dir, int64_t sequences) {
  LoadOptions options;
  options.max_tokens = kChunk;
  options.max_sequences = sequences;
  options.max_context = kContext;
  options.kv_block_size = 4;
  options.num_threads = 2;
  auto model = LoadedModel::Load(dir, options);
  EXPECT_TRUE(model.has_value()) << model.error().ToString();
  return model.has_value() ? std::move(*model) : nullptr;
}

struct Outcome {
  Result<GenerationResult> result = Error(ErrorCode::kInternal, "never finished");
  bool done = false;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    solo_model_ = Load(FixtureDir("g31b"), 1);
    model_ = Load(FixtureDir("g31b"), kSequences);
    ASSERT_TRUE(solo_model_ && model_);
    auto session = solo_model_->NewSession(2);
    ASSERT_TRUE(session.has_value());
    solo_ = std::make_unique<Session>(std::move(*session));
    solo_generator_ = std::make_unique<Generator>(*solo_, nullptr);
  }

  // Greedy tokens of `prompt` run alone.
  std::vector<int32_t> Solo(const std::vector<int32_t>& prompt, int64_t max_tokens) {
    GenerateOptions options;
    options.max_new_tokens = max_tokens;
    options.ignore_eos = true;
    auto result = solo_generator_->Generate(prompt, options);
    EXPECT_TRUE(result.has_value()) << result.error().ToString();
    return result.has_value() ? result->tokens : std::vector<int32_t>{};
  }

  std::unique_ptr<Runner> NewRunner(int64_t pool_sequences_full, int64_t full_blocks = 0) {
    RunnerOptions options;
    options.num_threads = 2;
    options.kv_pool = KvPoolSize::ForSequences(model_->program(), pool_sequences_full);
    if (full_blocks > 0) {
      for (size_t g = 0; g < model_->program().kv_groups.size(); ++g) {
        if (model_->program().kv_groups[g].window == 0) options.kv_pool.blocks[g] = full_blocks;
      }
    }
    auto runner = model_->NewRunner(options);
    EXPECT_TRUE(runner.has_value()) << runner.error().ToString();
    return runner.has_value() ? std::move(*runner) : nullptr;
  }

  std::unique_ptr<LoadedModel> solo_model_, model_;
  std::unique_ptr<Session> solo_;
  std::unique_ptr<Generator> solo_generator_;
};

// A request with greedy decoding that runs to max_tokens.
Request Greedy(std::vector<int32_t> prompt, int64_t max_tokens, std::map<RequestId, Outcome>* outcomes) {
  Request request;
  request.prompt = std::move(prompt);
  request.options.max_new_tokens = max_tokens;
  request.options.ignore_eos = true;
  request.on_done = [outcomes](RequestId id, Result<GenerationResult> result) {
    (*outcomes)[id].result = std::move(result);
    (*outcomes)[id].done = true;
  };
  return request;
}

TEST_F(SchedulerTest, RandomRequestsCancellationsAndPreemptionsMatchTheirSoloRuns) {
  // Full-attention blocks for 24 of the 64 positions four sequences could hold: sequences must
  // wait, and decoding ones preempt the newest.
  auto runner = NewRunner(kSequences, /*full_blocks=*/24);
  ASSERT_TRUE(runner);
  std::map<RequestId, Outcome> outcomes;
  std::map<RequestId, std::pair<std::vector<int32_t>, int64_t>> asked;
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> token(3, 400);
  // Prompts share a few prefixes, so the prefix cache is hit too.
  std::vector<std::vector<int32_t>> stems;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> stem(static_cast<size_t>(9 + 4 * i));
    for (int32_t& t : stem) t = token(rng);
    stems.push_back(stem);
  }
  int64_t cancelled = 0;
  {
    Scheduler scheduler(*runner, nullptr);
    for (int round = 0; round < 10; ++round) {
      std::vector<RequestId> ids;
      for (int i = 0; i < 20; ++i) {
        std::vector<int32_t> prompt;
        if (rng() % 2 == 0) prompt = stems[rng() % stems.size()];
        const int64_t extra = 1 + static_cast<int64_t>(rng() % 30);
        for (int64_t j = 0; j < extra; ++j) prompt.push_back(token(rng));
        const int64_t max_tokens = 1 + static_cast<int64_t>(rng() % 12);
        auto id = scheduler.Submit(Greedy(prompt, max_tokens, &outcomes));
        ASSERT_TRUE(id.has_value()) << id.error().ToString();
        asked[*id] = {prompt, max_tokens};
        ids.push_back(*id);
      }
      // Interleave steps, submissions and cancellations.
      for (int s = 0; s < 6; ++s) ASSERT_TRUE(scheduler.Step().has_value());
      for (RequestId id : ids) {
        if (rng() % 10 == 0) {
          scheduler.Cancel(id);
          ++cancelled;
        }
      }
    }
    ASSERT_TRUE(scheduler.RunUntilIdle().ok());
    const SchedulerStats stats = scheduler.stats();
    EXPECT_EQ(stats.finished, 200);
    EXPECT_EQ(stats.running, 0);
    EXPECT_EQ(stats.waiting, 0);
    EXPECT_GT(stats.preemptions, 0) << "the pool was meant to force preemptions";
    EXPECT_GT(stats.cached_tokens, 0) << "shared prompt stems were meant to hit the prefix cache";
  }
  EXPECT_TRUE(runner->pool().AllFree()) << "blocks leaked";
  int64_t seen_cancelled = 0;
  for (const auto& [id, outcome] : outcomes) {
    ASSERT_TRUE(outcome.done);
    ASSERT_TRUE(outcome.result.has_value()) << outcome.result.error().ToString();
    const auto& [prompt, max_tokens] = asked[id];
    const std::vector<int32_t> expected = Solo(prompt, max_tokens);
    const std::vector<int32_t>& got = outcome.result->tokens;
    if (outcome.result->stop_reason == StopReason::kCancelled) {
      ++seen_cancelled;
      ASSERT_LE(got.size(), expected.size());
      EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin())) << "request " << id;
    } else {
      EXPECT_EQ(outcome.result->stop_reason, StopReason::kMaxTokens);
      EXPECT_EQ(got, expected) << "request " << id;
    }
  }
  EXPECT_LE(seen_cancelled, cancelled);
}

TEST_F(SchedulerTest, ACachedPrefixGivesTheLogitsOfAFreshPrefill) {
  auto runner = NewRunner(kSequences);
  ASSERT_TRUE(runner);
  std::mt19937 rng(5);
  std::vector<int32_t> prompt(29);  // past the window of 6, several blocks of 4
  for (int32_t& t : prompt) t = static_cast<int32_t>(3 + rng() % 400);
  std::map<RequestId, Outcome> outcomes;
  Scheduler scheduler(*runner, nullptr);
  std::vector<RequestId> ids;
  for (int i = 0; i < 2; ++i) {
    Request request = Greedy(prompt, 5, &outcomes);
    request.options.keep_logits = true;
    auto id = scheduler.Submit(std::move(request));
    ASSERT_TRUE(id.has_value());
    ids.push_back(*id);
    ASSERT_TRUE(scheduler.RunUntilIdle().ok());  // the second starts after the first ended
  }
  const GenerationResult& cold = *outcomes[ids[0]].result;
  const GenerationResult& warm = *outcomes[ids[1]].result;
  EXPECT_EQ(cold.reused_tokens, 0);
  EXPECT_EQ(warm.reused_tokens, 28);  // every whole block before the last prompt token
  EXPECT_EQ(warm.tokens, cold.tokens);
  ASSERT_EQ(warm.logits.size(), cold.logits.size());
  float worst = 0.0f;
  for (size_t i = 0; i < cold.logits.size(); ++i) worst = std::max(worst, std::abs(warm.logits[i] - cold.logits[i]));
  EXPECT_LT(worst, 1e-4f);
  // And against the solo run's logits of the same positions.
  auto fresh = solo_->Prefill(prompt);
  ASSERT_TRUE(fresh.has_value());
  solo_->Reset();
  worst = 0.0f;
  for (size_t v = 0; v < fresh->size(); ++v) worst = std::max(worst, std::abs(warm.logits[v] - (*fresh)[v]));
  EXPECT_LT(worst, 1e-4f);
  EXPECT_EQ(scheduler.stats().cached_tokens, 28);
}

TEST_F(SchedulerTest, ManyThreadsSubmitWhileTheDriverRuns) {
  auto runner = NewRunner(kSequences);
  ASSERT_TRUE(runner);
  std::mutex mutex;
  std::map<RequestId, Outcome> outcomes;
  std::map<RequestId, std::vector<int32_t>> prompts;
  Scheduler scheduler(*runner, nullptr);
  scheduler.Start();
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(100 + c);
      for (int i = 0; i < 8; ++i) {
        std::vector<int32_t> prompt(static_cast<size_t>(1 + rng() % 20));
        for (int32_t& t : prompt) t = static_cast<int32_t>(3 + rng() % 400);
        Request request;
        request.prompt = prompt;
        request.options.max_new_tokens = 6;
        request.options.ignore_eos = true;
        request.on_done = [&](RequestId id, Result<GenerationResult> result) {
          std::lock_guard<std::mutex> lock(mutex);
          outcomes[id].result = std::move(result);
          outcomes[id].done = true;
        };
        auto id = scheduler.Submit(std::move(request));
        ASSERT_TRUE(id.has_value());
        std::lock_guard<std::mutex> lock(mutex);
        prompts[*id] = prompt;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  scheduler.Stop();  // lets every submitted request finish
  ASSERT_EQ(outcomes.size(), 32u);
  for (const auto& [id, outcome] : outcomes) {
    ASSERT_TRUE(outcome.result.has_value());
    EXPECT_EQ(outcome.result->tokens, Solo(prompts[id], 6)) << "request " << id;
  }
}

// A CPU backend whose placed model also samples rows itself (greedily, as a device would), so the
// scheduler's device-sampling path runs on the CPU.
class RowSamplingModel : public PlacedModel {
 public:
  RowSamplingModel(std::unique_ptr<PlacedModel> inner, int64_t vocab) : inner_(std::move(inner)), vocab_(vocab) {}
  Status RunStep(const StepFunction& step, const StepIo& io) override {
    if (io.sample_rows.empty()) return inner_->RunStep(step, io);
    ++sampled_steps;
    logits_.resize(io.sample_rows.size() * static_cast<size_t>(vocab_));
    StepIo host = io;
    host.logits = logits_.data();
    host.sample_rows = {};
    TRY(inner_->RunStep(step, host));
    for (size_t r = 0; r < io.sample_rows.size(); ++r) {
      if (io.sample_rows[r].options.temperature != 0.0f) return Error(ErrorCode::kUnsupported, "the test backend samples greedily");
      const std::span<float> row(logits_.data() + r * static_cast<size_t>(vocab_), static_cast<size_t>(vocab_));
      if (const uint64_t* allowed = io.sample_rows[r].allowed) {
        ++masked_rows;
        for (size_t t = 0; t < row.size(); ++t) {
          if (!((allowed[t / 64] >> (t % 64)) & 1)) row[t] = -std::numeric_limits<float>::infinity();
        }
      }
      io.sampled[r] = {ArgMax(row), Logprob(row, ArgMax(row))};
    }
    return Status::Ok();
  }
  MemoryReport memory() const override { return inner_->memory(); }
  bool SupportsCopyBlocks() const override { return true; }
  Status CopyBlocks(int32_t group, std::span<const int32_t> src, std::span<const int32_t> dst) override {
    return inner_->CopyBlocks(group, src, dst);
  }
  bool SupportsRowSampling() const override { return true; }
  int64_t sampled_steps = 0, masked_rows = 0;

 private:
  std::unique_ptr<PlacedModel> inner_;
  int64_t vocab_;
  std::vector<float> logits_;
};

using RowSamplingBackend = testing::CpuBackendWith<RowSamplingModel>;

// A runner of `model`'s program and weights on `backend`.
Result<std::unique_ptr<Runner>> RunnerOn(Backend& backend, const LoadedModel& model) {
  std::vector<WeightView> views;
  for (size_t i = 0; i < model.program().weights.size(); ++i) {
    const auto bytes = model.WeightBytes()[i];
    views.push_back({bytes.data(), model.program().weights[i].dtype, static_cast<int64_t>(bytes.size())});
  }
  return Runner::Create(model.program(), backend, std::move(views), {});
}

TEST_F(SchedulerTest, RowsSampledByTheBackendGiveTheSoloTokens) {
  RowSamplingBackend backend(model_->architecture().vocab_size());
  auto runner = RunnerOn(backend, *model_);
  ASSERT_TRUE(runner.has_value()) << runner.error().ToString();
  std::map<RequestId, Outcome> outcomes;
  std::map<RequestId, std::vector<int32_t>> prompts;
  std::mt19937 rng(21);
  {
    Scheduler scheduler(**runner, nullptr);
    for (int i = 0; i < 24; ++i) {
      std::vector<int32_t> prompt(static_cast<size_t>(1 + rng() % 20));
      for (int32_t& t : prompt) t = static_cast<int32_t>(3 + rng() % 400);
      Request request = Greedy(prompt, 7, &outcomes);
      if (i % 6 == 5) request.options.top_logprobs = 2;  // needs host logits: its steps sample on the host
      auto id = scheduler.Submit(std::move(request));
      ASSERT_TRUE(id.has_value());
      prompts[*id] = prompt;
    }
    ASSERT_TRUE(scheduler.RunUntilIdle().ok());
  }
  ASSERT_NE(backend.last, nullptr);
  EXPECT_GT(backend.last->sampled_steps, 0) << "the device-sampling path never ran";
  for (const auto& [id, outcome] : outcomes) {
    ASSERT_TRUE(outcome.result.has_value()) << outcome.result.error().ToString();
    EXPECT_EQ(outcome.result->tokens, Solo(prompts[id], 7)) << "request " << id;
  }
}

// Speculating requests (prompt lookup, whose drafts a repetitive prompt makes likely) beside plain
// ones on a backend that samples rows: a step that carries drafts needs every row's logits on the
// host, plain steps still sample on the backend, and every request gets its solo tokens.
TEST_F(SchedulerTest, SpeculatingRowsBesideRowsSampledByTheBackend) {
  RowSamplingBackend backend(model_->architecture().vocab_size());
  auto runner = RunnerOn(backend, *model_);
  ASSERT_TRUE(runner.has_value()) << runner.error().ToString();
  std::map<RequestId, Outcome> outcomes;
  std::map<RequestId, std::vector<int32_t>> prompts;
  int64_t drafted = 0;
  {
    Scheduler scheduler(**runner, nullptr);
    for (int i = 0; i < 8; ++i) {
      std::vector<int32_t> prompt;
      for (int repeat = 0; repeat < 3; ++repeat) {
        for (int32_t t = 0; t < 5; ++t) prompt.push_back(static_cast<int32_t>(10 + 7 * i + t));
      }
      Request request = Greedy(prompt, 12, &outcomes);
      if (i % 2 == 0) {
        request.options.speculative.type = SpeculativeType::kNgram;
        request.options.speculative.draft_max = 4;
      }
      auto id = scheduler.Submit(std::move(request));
      ASSERT_TRUE(id.has_value());
      prompts[*id] = prompt;
    }
    ASSERT_TRUE(scheduler.RunUntilIdle().ok());
    drafted = scheduler.stats().draft_tokens;
  }
  EXPECT_GT(drafted, 0) << "no request drafted: the test no longer speculates";
  ASSERT_NE(backend.last, nullptr);
  EXPECT_GT(backend.last->sampled_steps, 0) << "the device-sampling path never ran";
  for (const auto& [id, outcome] : outcomes) {
    ASSERT_TRUE(outcome.result.has_value()) << "request " << id << ": " << outcome.result.error().ToString();
    EXPECT_EQ(outcome.result->tokens, Solo(prompts[id], 12)) << "request " << id;
  }
}

// Structured output with rows sampled by the backend: each constrained row carries its mask there,
// and every request gets the tokens the host-only scheduler gives it (constrained or not).
TEST_F(SchedulerTest, ConstrainedRowsAreMaskedWhereTheyAreSampled) {
  const int64_t vocab = model_->architecture().vocab_size();
  const std::string patterns[] = {"(ab|ba)[01]{3,9}x?y{1,2}", "[xy]{2,5}0", "x(a|b){1,4}y"};
  std::vector<ConstraintSpec> constraints;
  for (const std::string& pattern : patterns) constraints.push_back(testing::SyntheticRegexConstraint(vocab, pattern));
  auto run = [&](Runner& runner) {
    std::map<RequestId, Outcome> outcomes;
    std::vector<RequestId> order;
    Scheduler scheduler(runner, nullptr);
    for (int i = 0; i < 8; ++i) {
      Request request = Greedy({5, 6, static_cast<int32_t>(7 + i)}, 16, &outcomes);
      if (i % 4 != 3) request.options.constraint = constraints[static_cast<size_t>(i) % 3];
      auto id = scheduler.Submit(std::move(request));
      EXPECT_TRUE(id.has_value());
      if (id.has_value()) order.push_back(*id);
    }
    EXPECT_TRUE(scheduler.RunUntilIdle().ok());
    std::vector<std::vector<int32_t>> tokens;
    for (RequestId id : order) {
      EXPECT_TRUE(outcomes[id].result.has_value()) << outcomes[id].result.error().ToString();
      tokens.push_back(outcomes[id].result.has_value() ? outcomes[id].result->tokens : std::vector<int32_t>{});
    }
    return tokens;
  };
  RowSamplingBackend backend(vocab);
  auto row_sampling = RunnerOn(backend, *model_);
  ASSERT_TRUE(row_sampling.has_value()) << row_sampling.error().ToString();
  const std::vector<std::vector<int32_t>> on_row_backend = run(**row_sampling);
  ASSERT_NE(backend.last, nullptr);
  EXPECT_GE(backend.last->masked_rows, 12) << "no constrained row was sampled by the backend";
  auto host = NewRunner(kSequences);
  ASSERT_TRUE(host);
  const std::vector<std::vector<int32_t>> on_host = run(*host);
  EXPECT_EQ(on_row_backend, on_host);
  // The constrained outputs end by their grammar (eos, id 1) before 16 tokens.
  for (size_t i = 0; i < on_host.size(); ++i) {
    if (i % 4 != 3) {
      EXPECT_EQ(on_host[i].back(), 1) << "request " << i;
    }
  }
}

// Penalties need the sequence's tokens against the logits: requests with any penalty sample on
// the host even where the backend samples rows, and get what the host-only scheduler gives.
TEST_F(SchedulerTest, PenalizedRequestsSampleOnTheHost) {
  auto run = [&](Runner& runner) {
    std::map<RequestId, Outcome> outcomes;
    std::vector<RequestId> order;
    Scheduler scheduler(runner, nullptr);
    const SamplingOptions penalties[] = {{.repetition_penalty = 1.5f}, {.presence_penalty = 1.0f}, {.frequency_penalty = -0.5f}};
    for (int i = 0; i < 6; ++i) {
      Request request = Greedy({5, 6, 7, static_cast<int32_t>(8 + i)}, 12, &outcomes);
      request.options.sampling = penalties[i % 3];
      auto id = scheduler.Submit(std::move(request));
      EXPECT_TRUE(id.has_value());
      if (id.has_value()) order.push_back(*id);
    }
    EXPECT_TRUE(scheduler.RunUntilIdle().ok());
    std::vector<std::vector<int32_t>> tokens;
    for (RequestId id : order) tokens.push_back(outcomes[id].result.has_value() ? outcomes[id].result->tokens : std::vector<int32_t>{});
    return tokens;
  };
  RowSamplingBackend backend(model_->architecture().vocab_size());
  auto row_sampling = RunnerOn(backend, *model_);
  ASSERT_TRUE(row_sampling.has_value()) << row_sampling.error().ToString();
  const std::vector<std::vector<int32_t>> on_row_backend = run(**row_sampling);
  ASSERT_NE(backend.last, nullptr);
  EXPECT_EQ(backend.last->sampled_steps, 0) << "a penalized request was sampled by the backend";
  auto host = NewRunner(kSequences);
  ASSERT_TRUE(host);
  const std::vector<std::vector<int32_t>> on_host = run(*host);
  EXPECT_EQ(on_row_backend, on_host);
  for (const auto& tokens : on_host) EXPECT_EQ(tokens.size(), 12u);
}

// The step counters: requests that arrive together share their prefill step; one that arrives
// while another decodes runs its prefill beside it, one more step with prompt tokens.
TEST_F(SchedulerTest, StepCountersTellTogetherFromStaggered) {
  auto runner = NewRunner(kSequences);
  ASSERT_TRUE(runner);
  std::map<RequestId, Outcome> outcomes;
  {
    Scheduler scheduler(*runner, nullptr);
    ASSERT_TRUE(scheduler.Submit(Greedy({5, 6, 7}, 5, &outcomes)).has_value());
    ASSERT_TRUE(scheduler.Submit(Greedy({8, 9, 10}, 5, &outcomes)).has_value());
    ASSERT_TRUE(scheduler.RunUntilIdle().ok());
    const SchedulerStats stats = scheduler.stats();
    EXPECT_EQ(stats.steps, 5);  // one prefill step (both first tokens), four decode steps
    EXPECT_EQ(stats.prompt_steps, 1);
    EXPECT_EQ(stats.step_rows, 10);
  }
  {
    Scheduler scheduler(*runner, nullptr);
    ASSERT_TRUE(scheduler.Submit(Greedy({5, 6, 7}, 5, &outcomes)).has_value());
    ASSERT_TRUE(scheduler.Step().has_value());
    ASSERT_TRUE(scheduler.Submit(Greedy({8, 9, 10}, 5, &outcomes)).has_value());
    ASSERT_TRUE(scheduler.RunUntilIdle().ok());
    const SchedulerStats stats = scheduler.stats();
    // A: steps 1-5; B: prefill beside A's decode at step 2, then to step 6.
    EXPECT_EQ(stats.steps, 6);
    EXPECT_EQ(stats.prompt_steps, 2);
    EXPECT_EQ(stats.step_rows, 1 + 2 * 4 + 1);
  }
}

TEST_F(SchedulerTest, RequestsThatCanNeverRunAreRefused) {
  auto runner = NewRunner(1);
  ASSERT_TRUE(runner);
  Scheduler scheduler(*runner, nullptr);
  std::map<RequestId, Outcome> outcomes;
  auto empty = scheduler.Submit(Greedy({}, 4, &outcomes));
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().message(), "the prompt is empty: give at least one token");
  auto long_prompt = scheduler.Submit(Greedy(std::vector<int32_t>(kContext + 1, 5), 4, &outcomes));
  ASSERT_FALSE(long_prompt.has_value());
  EXPECT_EQ(long_prompt.error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(long_prompt.error().message(), "the prompt has 65 tokens, more than the context of 64 tokens; raise --ctx or shorten the prompt");
  Request hot = Greedy({5, 6}, 4, &outcomes);
  hot.options.sampling.temperature = -1.0f;
  auto invalid = scheduler.Submit(std::move(hot));
  ASSERT_FALSE(invalid.has_value());
  EXPECT_EQ(invalid.error().code(), ErrorCode::kInvalidArgument);
  auto bad_id = scheduler.Submit(Greedy({5, 1 << 20}, 4, &outcomes));
  ASSERT_FALSE(bad_id.has_value());
  EXPECT_NE(bad_id.error().message().find("outside the vocabulary"), std::string::npos);
  Request stops = Greedy({5, 6}, 4, &outcomes);
  stops.options.stop_strings = {"x"};
  EXPECT_FALSE(scheduler.Submit(std::move(stops)).has_value());  // no tokenizer

  // Cancelled while running: the counts follow at once, even when nothing is left to run.
  auto doomed = scheduler.Submit(Greedy({5, 6, 7}, 30, &outcomes));
  ASSERT_TRUE(doomed.has_value());
  ASSERT_TRUE(scheduler.Step().has_value());
  EXPECT_EQ(scheduler.stats().running, 1);
  scheduler.Cancel(*doomed);
  ASSERT_TRUE(scheduler.Step().has_value());
  EXPECT_EQ(scheduler.stats().running, 0);
  EXPECT_EQ(scheduler.stats().waiting, 0);
  ASSERT_TRUE(outcomes[*doomed].result.has_value());
  EXPECT_EQ(outcomes[*doomed].result->stop_reason, StopReason::kCancelled);
  EXPECT_EQ(scheduler.stats().cancelled, 1);

  // A request that runs to the end of the context stops there.
  auto full = scheduler.Submit(Greedy(std::vector<int32_t>(kContext - 2, 5), 10, &outcomes));
  ASSERT_TRUE(full.has_value());
  ASSERT_TRUE(scheduler.RunUntilIdle().ok());
  ASSERT_TRUE(outcomes[*full].result.has_value());
  EXPECT_EQ(outcomes[*full].result->stop_reason, StopReason::kContextFull);
  EXPECT_EQ(outcomes[*full].result->tokens.size(), 3u);  // positions 62, 63, then no room
}

}  // namespace
}  // namespace kiln
