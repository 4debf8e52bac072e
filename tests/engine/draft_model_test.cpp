// A draft model in the batched scheduler (engine/draft_model.h, SchedulerOptions::draft_model):
// batched greedy drafts that equal the draft model's own greedy decoding, a cache kept by the
// longest common prefix, and scheduled requests (greedy and seeded at 0.9, random lengths,
// cancellations, target and draft pools small enough to preempt and to run out) whose outputs
// equal their plain solo runs token for token, with the draft counters right. A fixture drafting
// for itself must have every greedy draft accepted.
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>

#include "engine/draft_model.h"
#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/scheduler.h"
#include "kiln/kiln.h"
#include "submit_together.h"
#include <nlohmann/json.hpp>

namespace kiln {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

LoadOptions FixtureLoad(int64_t sequences) {
  LoadOptions load;
  load.max_tokens = 16;
  load.max_sequences = sequences;
  load.max_context = 96;
  load.kv_block_size = 4;
  load.num_threads = 2;
  return load;
}

std::unique_ptr<DraftModel> NewDraftModel(const std::string& name, int64_t sequences, int64_t pool_sequences) {
  auto loaded = LoadedModel::Load(FixtureDir(name), FixtureLoad(sequences));
  EXPECT_TRUE(loaded.has_value()) << loaded.error().ToString();
  if (!loaded.has_value()) return nullptr;
  RunnerOptions options;
  options.num_threads = 2;
  options.kv_pool = KvPoolSize::ForSequences((*loaded)->program(), pool_sequences);
  auto draft = DraftModel::Create(std::move(*loaded), 512, options);
  EXPECT_TRUE(draft.has_value()) << draft.error().ToString();
  return draft.has_value() ? std::move(*draft) : nullptr;
}

std::vector<int32_t> GreedySolo(LoadedModel& model, const std::vector<int32_t>& prompt, int64_t max_tokens) {
  auto session = model.NewSession(2);
  EXPECT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  GenerateOptions options;
  options.max_new_tokens = max_tokens;
  options.ignore_eos = true;
  auto result = generator.Generate(prompt, options);
  EXPECT_TRUE(result.has_value()) << result.error().ToString();
  return result.has_value() ? result->tokens : std::vector<int32_t>{};
}

std::vector<int32_t> RandomPrompt(std::mt19937& rng, int min_length, int max_length) {
  std::vector<int32_t> prompt(static_cast<size_t>(min_length + static_cast<int>(rng() % (max_length - min_length + 1))));
  for (int32_t& t : prompt) t = 2 + static_cast<int32_t>(rng() % 500);
  return prompt;
}

// Several sequences drafted in one call each get the draft model's own greedy continuation; the
// next call keeps the common prefix and feeds only what changed.
TEST(DraftModel, BatchedDraftsAreTheDraftModelsGreedyTokens) {
  auto draft = NewDraftModel("e2b", 4, 4);
  ASSERT_TRUE(draft);
  auto solo = LoadedModel::Load(FixtureDir("e2b"), FixtureLoad(1));
  ASSERT_TRUE(solo.has_value());
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> histories;
  for (int i = 0; i < 4; ++i) histories.push_back(RandomPrompt(rng, 2, 30));  // 30 > Tmax: catch-up in two steps
  std::vector<std::unique_ptr<DraftSequence>> sequences;
  std::vector<std::vector<int32_t>> drafts(4);
  std::vector<DraftModel::Job> jobs;
  for (int i = 0; i < 4; ++i) {
    sequences.push_back(draft->NewSequence());
    jobs.push_back({sequences.back().get(), histories[static_cast<size_t>(i)], 2 + i, &drafts[static_cast<size_t>(i)]});
  }
  ASSERT_TRUE(draft->Draft(jobs).ok());
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(drafts[i], GreedySolo(**solo, histories[i], static_cast<int64_t>(2 + i))) << i;
    // The cache holds the history and every draft but the last.
    std::vector<int32_t> cached = histories[i];
    cached.insert(cached.end(), drafts[i].begin(), drafts[i].end() - 1);
    EXPECT_EQ(sequences[i]->cached_tokens(), cached) << i;
  }
  // Next round: sequence 0 accepted its first draft and the target chose another token; sequence
  // 1 accepted none. Only their new tokens are fed; the drafts again equal solo greedy runs.
  histories[0].push_back(drafts[0][0]);
  histories[0].push_back(drafts[0][1] == 7 ? 8 : 7);
  histories[1].push_back(drafts[1][0] == 9 ? 10 : 9);
  for (size_t i = 0; i < 2; ++i) {
    drafts[i].clear();
    jobs[i].history = histories[i];
    jobs[i].max = 3;
  }
  ASSERT_TRUE(draft->Draft(std::span<const DraftModel::Job>(jobs.data(), 2)).ok());
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(drafts[i], GreedySolo(**solo, histories[i], 3)) << i;

  // One catch-up step of Tmax (16) tokens: a 40-token history drafts nothing the first time, the
  // short one drafts at once; the long one drafts after two more calls.
  auto fresh = draft->NewSequence(), fresh_short = draft->NewSequence();
  const std::vector<int32_t> long_history = RandomPrompt(rng, 40, 40), short_history = {5, 6};
  std::vector<int32_t> long_drafts, short_drafts;
  const DraftModel::Job pair[] = {{fresh.get(), long_history, 2, &long_drafts}, {fresh_short.get(), short_history, 2, &short_drafts}};
  ASSERT_TRUE(draft->Draft(pair, /*catch_up_steps=*/1).ok());
  EXPECT_TRUE(long_drafts.empty());
  EXPECT_EQ(short_drafts.size(), 2u);
  EXPECT_EQ(fresh->cached_tokens().size(), 14u);  // the step's 16 tokens less the short one's 2
  const DraftModel::Job one[] = {{fresh.get(), long_history, 2, &long_drafts}};
  ASSERT_TRUE(draft->Draft(one, 1).ok());
  EXPECT_TRUE(long_drafts.empty());
  ASSERT_TRUE(draft->Draft(one, 1).ok());
  EXPECT_EQ(long_drafts, GreedySolo(**solo, long_history, 2));

  // The draft model's context bounds the drafts: 94 tokens leave room for 2.
  sequences.clear();  // their blocks back to the pool
  fresh.reset();
  fresh_short.reset();
  auto near_end = draft->NewSequence();
  const std::vector<int32_t> full = RandomPrompt(rng, 94, 94);
  std::vector<int32_t> end_drafts;
  const DraftModel::Job end[] = {{near_end.get(), full, 8, &end_drafts}};
  ASSERT_TRUE(draft->Draft(end).ok());
  EXPECT_EQ(end_drafts.size(), 2u);

  // A vocabulary of another size is refused, naming the draft model.
  auto other = LoadedModel::Load(std::string(KILN_BUNDLED_MODEL_DIR), FixtureLoad(1));
  ASSERT_TRUE(other.has_value());
  auto refused = DraftModel::Create(std::move(*other), 512);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("brown-gemma4 has a vocabulary of 8192 tokens, the target's has 512"), std::string::npos)
      << refused.error().message();
}

// Blocks the draft pool cannot give stop a job's drafting; it keeps its cache and nothing fails.
TEST(DraftModel, APoolThatRunsOutDraftsLessNeverFails) {
  auto loaded = LoadedModel::Load(FixtureDir("e2b"), FixtureLoad(4));
  ASSERT_TRUE(loaded.has_value());
  RunnerOptions options;
  options.num_threads = 2;
  options.kv_pool = KvPoolSize::ForSequences((*loaded)->program(), 1);
  for (size_t g = 0; g < (*loaded)->program().kv_groups.size(); ++g) {
    if ((*loaded)->program().kv_groups[g].window == 0) options.kv_pool.blocks[g] = 5;  // 20 positions
  }
  auto draft = DraftModel::Create(std::move(*loaded), 512, options);
  ASSERT_TRUE(draft.has_value());
  auto a = (*draft)->NewSequence(), b = (*draft)->NewSequence();
  const std::vector<int32_t> history_a(14, 9), history_b(10, 11);
  std::vector<int32_t> drafts_a, drafts_b;
  const DraftModel::Job jobs[] = {{a.get(), history_a, 8, &drafts_a}, {b.get(), history_b, 8, &drafts_b}};
  ASSERT_TRUE((*draft)->Draft(jobs).ok());
  // b (shorter) first: 10 positions + drafts; a gets what is left, or nothing.
  EXPECT_GT(drafts_b.size(), 0u);
  EXPECT_LT(drafts_a.size() + drafts_b.size(), 16u);
  a.reset();
  b.reset();
  EXPECT_TRUE((*draft)->runner().pool().AllFree());
}

// A prompt's prefix cached on the draft model: a second sequence with the same prompt takes it
// instead of running it (g31b: sliding layers, so ring blocks are copied), and drafts exactly
// what a draft model without a cache drafts; a pool that runs short evicts the cache first.
TEST(DraftModel, PromptsShareTheirCachedPrefix) {
  auto draft = NewDraftModel("g31b", 4, 4);
  auto fresh = NewDraftModel("g31b", 4, 4);
  ASSERT_TRUE(draft && fresh);
  std::mt19937 rng(3);
  std::vector<int32_t> prompt(23);
  for (int32_t& t : prompt) t = static_cast<int32_t>(3 + rng() % 500);
  std::vector<int32_t> history = prompt;
  history.push_back(17);  // the target's first token
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  std::vector<int32_t> first, second, expected;
  auto a = draft->NewSequence(), b = draft->NewSequence(), c = fresh->NewSequence();
  const DraftModel::Job job_a{a.get(), history, 5, &first, prompt_length};
  ASSERT_TRUE(draft->Draft(std::span<const DraftModel::Job>(&job_a, 1)).ok());
  EXPECT_EQ(draft->cached_tokens(), 0);
  EXPECT_GT(draft->prefix_cache().cached_blocks(), 0);
  const DraftModel::Job job_b{b.get(), history, 5, &second, prompt_length};
  ASSERT_TRUE(draft->Draft(std::span<const DraftModel::Job>(&job_b, 1)).ok());
  EXPECT_EQ(draft->cached_tokens(), 20);  // 23 prompt tokens, blocks of 4, the last one runs
  EXPECT_EQ(b->cached_tokens().size(), history.size() + 4);
  const DraftModel::Job job_c{c.get(), history, 5, &expected};  // no prompt: nothing cached
  ASSERT_TRUE(fresh->Draft(std::span<const DraftModel::Job>(&job_c, 1)).ok());
  EXPECT_EQ(fresh->prefix_cache().cached_blocks(), 0);
  ASSERT_EQ(expected.size(), 5u);
  EXPECT_EQ(first, expected);
  EXPECT_EQ(second, expected) << "drafts from the adopted prefix differ";
  // Two more sequences of other prompts fill the pool: the cached prefix goes first.
  a.reset();
  b.reset();
  std::vector<std::unique_ptr<DraftSequence>> others;
  std::vector<std::vector<int32_t>> histories(4, std::vector<int32_t>(90, 5)), drafts(4);
  std::vector<DraftModel::Job> jobs;
  for (size_t i = 0; i < histories.size(); ++i) {
    histories[i][0] = static_cast<int32_t>(i);
    others.push_back(draft->NewSequence());
    jobs.push_back({others.back().get(), histories[i], 4, &drafts[i], 90});
  }
  ASSERT_TRUE(draft->Draft(jobs).ok());
  for (const auto& d : drafts) EXPECT_FALSE(d.empty()) << "a job went without drafts while the cache held blocks";
  others.clear();
  draft->ClearPrefixCache();
  EXPECT_TRUE(draft->runner().pool().AllFree());
}

struct Case {
  std::vector<int32_t> prompt;
  GenerateOptions options;
  std::vector<int32_t> expected;
  int64_t cancel_after = 0;  // > 0: cancelled once this many tokens streamed
  RequestId id = 0;
  std::optional<Result<GenerationResult>> got;
};

struct ScheduledRun {
  SchedulerStats stats;
  bool target_pool_free = false;
  bool draft_pool_free = false;
  int64_t draft_cached_blocks = 0;
};

// `cases` through a scheduler on the target fixture, drafting with `draft`.
ScheduledRun RunScheduled(LoadedModel& target, DraftModel& draft, std::vector<Case>& cases, int64_t target_pool_sequences) {
  RunnerOptions runner_options;
  runner_options.num_threads = 2;
  runner_options.kv_pool = KvPoolSize::ForSequences(target.program(), target_pool_sequences);
  auto runner = target.NewRunner(runner_options);
  EXPECT_TRUE(runner.has_value()) << runner.error().ToString();
  ScheduledRun run;
  if (!runner.has_value()) return run;
  {
    SchedulerOptions options;
    options.draft_model = &draft;
    Scheduler scheduler(**runner, nullptr, options);
    for (Case& c : cases) {
      Request request;
      request.prompt = c.prompt;
      request.options = c.options;
      if (c.cancel_after > 0) {
        request.options.on_token = [&scheduler, &c](const GeneratedToken& token) {
          if (token.index + 1 == c.cancel_after) scheduler.Cancel(c.id);
        };
      }
      request.on_done = [&c](RequestId, Result<GenerationResult> result) { c.got = std::move(result); };
      auto id = scheduler.Submit(std::move(request));
      EXPECT_TRUE(id.has_value()) << id.error().ToString();
      if (id.has_value()) c.id = *id;
    }
    EXPECT_TRUE(scheduler.RunUntilIdle().ok());
    run.stats = scheduler.stats();
  }
  run.target_pool_free = (*runner)->pool().AllFree();
  // The draft model's prefix cache keeps prompts' blocks: given back, the pool must be whole.
  run.draft_cached_blocks = draft.prefix_cache().cached_blocks();
  draft.ClearPrefixCache();
  run.draft_pool_free = draft.runner().pool().AllFree();
  return run;
}

// Many requests (greedy and seeded at 0.9, random lengths and draft sizes, some plain, some by
// prompt lookup, some cancelled), a target pool of two sequences for four running (preemptions)
// and a draft pool that runs out: every output equals its plain solo run.
TEST(DraftModelScheduler, OutputsEqualPlainSoloRunsWithPreemptionsAndCancellations) {
  auto target = LoadedModel::Load(FixtureDir("g31b"), FixtureLoad(4));
  ASSERT_TRUE(target.has_value()) << target.error().ToString();
  auto solo = LoadedModel::Load(FixtureDir("g31b"), FixtureLoad(1));
  ASSERT_TRUE(solo.has_value());
  // g31b drafting for itself (every greedy draft accepted) with room for every sequence; e2b
  // with room for one sequence at the full context, so requests often do not speculate.
  for (const auto& [draft_name, draft_pool] : std::vector<std::pair<std::string, int64_t>>{{"g31b", 4}, {"e2b", 1}}) {
    SCOPED_TRACE(draft_name);
    auto draft = NewDraftModel(draft_name, 4, draft_pool);
    ASSERT_TRUE(draft);
    std::mt19937 rng(draft_name == "g31b" ? 7 : 8);
    std::vector<Case> cases(16);
    for (size_t i = 0; i < cases.size(); ++i) {
      Case& c = cases[i];
      c.prompt = RandomPrompt(rng, 3, 34);
      c.options.max_new_tokens = 10 + static_cast<int64_t>(rng() % 45);
      c.options.ignore_eos = true;
      c.options.sampling.temperature = i % 2 == 1 ? 0.9f : 0.0f;
      c.options.sampling.seed = 100 + i;
      auto session = (*solo)->NewSession(2);
      ASSERT_TRUE(session.has_value());
      Generator generator(*session, nullptr);
      auto expected = generator.Generate(c.prompt, c.options);
      ASSERT_TRUE(expected.has_value());
      c.expected = expected->tokens;
      if (i % 8 == 7) {
        // plain decoding beside the speculating ones
      } else if (i % 8 == 6) {
        c.options.speculative.type = SpeculativeType::kNgram;
        c.options.speculative.draft_max = 3;
      } else {
        c.options.speculative.type = SpeculativeType::kDraft;
        c.options.speculative.draft_max = 1 + static_cast<int>(rng() % 7);
      }
      if (i % 5 == 4) c.cancel_after = 3 + static_cast<int64_t>(rng() % 5);
    }
    const ScheduledRun run = RunScheduled(**target, *draft, cases, /*target_pool_sequences=*/2);
    int64_t drafted = 0, accepted = 0, cancelled = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      ASSERT_TRUE(c.got.has_value()) << i;
      ASSERT_TRUE(c.got->has_value()) << c.got->error().ToString();
      const GenerationResult& got = **c.got;
      drafted += got.draft_tokens;
      accepted += got.accepted_draft_tokens;
      EXPECT_LE(got.accepted_draft_tokens, got.draft_tokens);
      if (c.cancel_after > 0 && got.stop_reason == StopReason::kCancelled) {
        ++cancelled;
        EXPECT_GE(static_cast<int64_t>(got.tokens.size()), c.cancel_after) << i;
        ASSERT_LE(got.tokens.size(), c.expected.size()) << i;
        EXPECT_TRUE(std::equal(got.tokens.begin(), got.tokens.end(), c.expected.begin())) << "request " << i;
        continue;
      }
      EXPECT_EQ(got.stop_reason, StopReason::kMaxTokens) << i;
      EXPECT_EQ(got.tokens, c.expected) << "request " << i << " (temperature " << c.options.sampling.temperature << ")";
      // Each step emits the drafts it accepted and one token more.
      EXPECT_EQ(got.decode_steps + got.accepted_draft_tokens, static_cast<int64_t>(got.tokens.size())) << i;
      if (c.options.speculative.type == SpeculativeType::kDraft && draft_name == "g31b" && c.options.sampling.temperature == 0) {
        EXPECT_GT(got.draft_tokens, 0) << i;
        EXPECT_EQ(got.accepted_draft_tokens, got.draft_tokens) << "a model accepts its own greedy drafts (request " << i << ")";
      }
      if (c.options.speculative.type == SpeculativeType::kNone) {
        EXPECT_EQ(got.draft_tokens, 0) << i;
      }
    }
    EXPECT_GT(cancelled, 0);
    EXPECT_EQ(run.stats.finished, static_cast<int64_t>(cases.size()));
    EXPECT_EQ(run.stats.draft_tokens, drafted);
    EXPECT_EQ(run.stats.accepted_draft_tokens, accepted);
    EXPECT_GT(accepted, 0);
    EXPECT_GT(run.stats.preemptions, 0) << "the target pool was meant to force preemptions";
    EXPECT_TRUE(run.target_pool_free || run.stats.cached_blocks > 0);
    EXPECT_TRUE(run.draft_pool_free) << "draft blocks leaked";
    if (draft_pool == 4) {
      EXPECT_GT(run.draft_cached_blocks, 0) << "prompts were meant to be cached on the draft model";
    }
  }
}

// Requests that ask for a draft model without one, or bring their own single-sequence drafter,
// are refused by name.
TEST(DraftModelScheduler, RefusesWhatCannotWork) {
  auto target = LoadedModel::Load(FixtureDir("g31b"), FixtureLoad(2));
  ASSERT_TRUE(target.has_value());
  auto runner = (*target)->NewRunner();
  ASSERT_TRUE(runner.has_value());
  Request request;
  request.prompt = {5, 6, 7};
  request.options.speculative.type = SpeculativeType::kDraft;
  {
    Scheduler scheduler(**runner, nullptr);
    EXPECT_EQ(scheduler.Check(request).error().message(),
              "speculative type draft needs the scheduler's draft model (SchedulerOptions::draft_model; --draft MODEL)");
  }
  auto draft = NewDraftModel("e2b", 2, 2);
  ASSERT_TRUE(draft);
  SchedulerOptions options;
  options.draft_model = draft.get();
  Scheduler scheduler(**runner, nullptr, options);
  EXPECT_TRUE(scheduler.Check(request).ok());
  auto loaded = LoadedModel::Load(FixtureDir("e2b"), FixtureLoad(1));
  ASSERT_TRUE(loaded.has_value());
  auto drafter = ModelDrafter::Create(std::move(*loaded), 512);
  ASSERT_TRUE(drafter.has_value());
  request.options.speculative.drafter = drafter->get();
  EXPECT_EQ(scheduler.Check(request).error().code(), ErrorCode::kInvalidArgument);
}

// The public API: the bundled model drafting for itself (ModelOptions::draft_model) gives the
// same text as plain decoding, greedy and seeded, with every greedy draft accepted; options that
// cannot work are refused.
TEST(DraftModelApi, BundledModelDraftingForItselfEqualsPlainDecoding) {
  ModelOptions options;
  options.context = 512;
  options.chunk = 64;
  options.parallel = 3;
  options.threads = 2;
  auto plain = Model::Load(KILN_BUNDLED_MODEL_DIR, options);
  ASSERT_TRUE(plain.has_value()) << plain.error().ToString();
  options.draft_model = KILN_BUNDLED_MODEL_DIR;
  options.draft_max = 4;
  auto speculative = Model::Load(KILN_BUNDLED_MODEL_DIR, options);
  ASSERT_TRUE(speculative.has_value()) << speculative.error().ToString();
  const std::vector<std::string> prompts = {"The jury said that the city", "In the spring the farmers of the county",
                                            "He walked to the window and"};
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest request;
    request.prompt = prompts[i];
    request.max_tokens = 24 + 8 * static_cast<int64_t>(i);
    request.ignore_eos = true;
    SamplingParams sampling;
    if (i == 1) {
      sampling.temperature = 0.9f;
      sampling.seed = 42;
    }
    request.sampling = sampling;
    requests.push_back(request);
  }
  std::vector<Completion> expected;
  for (const GenerationRequest& request : requests) {
    auto done = (*plain)->Generate(request);
    ASSERT_TRUE(done.has_value()) << done.error().ToString();
    expected.push_back(*done);
  }
  // All at once: they speculate in the same steps.
  std::vector<Completion> got = SubmitTogether(**speculative, requests);
  int64_t drafted = 0, accepted = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_FALSE(got[i].error) << got[i].error->ToString();
    EXPECT_EQ(got[i].tokens, expected[i].tokens) << i;
    EXPECT_EQ(got[i].text, expected[i].text) << i;
    EXPECT_EQ(expected[i].draft_tokens, 0);
    EXPECT_GT(got[i].draft_tokens, 0) << i;
    if (i != 1) {
      EXPECT_EQ(got[i].accepted_draft_tokens, got[i].draft_tokens) << "its own greedy drafts, request " << i;
    }
    drafted += got[i].draft_tokens;
    accepted += got[i].accepted_draft_tokens;
  }
  const ModelStats stats = (*speculative)->stats();
  EXPECT_EQ(stats.draft_tokens, drafted);
  EXPECT_EQ(stats.accepted_draft_tokens, accepted);

  options.draft_model.clear();
  options.speculative = "draft";
  EXPECT_EQ(Model::Load(KILN_BUNDLED_MODEL_DIR, options).error().message(),
            "speculative 'draft' needs draft_model: a smaller model with the same vocabulary");
  options.speculative = "ngram";
  options.draft_model = KILN_BUNDLED_MODEL_DIR;
  EXPECT_EQ(Model::Load(KILN_BUNDLED_MODEL_DIR, options).error().message(), "draft_model drafts with speculative 'draft' or 'mtp', not 'ngram'");
  // The same vocabulary size, another tokenizer: two tokens swapped.
  const std::filesystem::path swapped = std::filesystem::temp_directory_path() / "kiln_draft_swapped_tokens";
  std::filesystem::remove_all(swapped);
  std::filesystem::copy(KILN_BUNDLED_MODEL_DIR, swapped);
  {
    std::ifstream in(swapped / "tokenizer.json");
    nlohmann::ordered_json tokenizer = nlohmann::ordered_json::parse(in);
    auto& vocab = tokenizer["model"]["vocab"];
    ASSERT_EQ(vocab["M"], 300);
    ASSERT_EQ(vocab["N"], 301);
    vocab["M"] = 301;
    vocab["N"] = 300;
    std::ofstream(swapped / "tokenizer.json") << tokenizer.dump();
  }
  options.speculative = "";
  options.draft_model = swapped.string();
  auto other_tokens = Model::Load(KILN_BUNDLED_MODEL_DIR, options);
  ASSERT_FALSE(other_tokens.has_value());
  EXPECT_EQ(other_tokens.error().message(), "the draft model " + swapped.string() +
                                                "'s tokenizer differs from the target's: token 300 is 'N', the target's 'M'; a draft "
                                                "model must share the target's tokenizer");
  std::filesystem::remove_all(swapped);
  options.draft_model = FixtureDir("g31b");
  auto other_vocab = Model::Load(KILN_BUNDLED_MODEL_DIR, options);
  ASSERT_FALSE(other_vocab.has_value());
  EXPECT_NE(other_vocab.error().message().find("g31b has a vocabulary of 512 tokens, the target's has 8192"), std::string::npos)
      << other_vocab.error().message();
}

}  // namespace
}  // namespace kiln
