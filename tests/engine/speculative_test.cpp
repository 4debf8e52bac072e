// Speculative decoding (engine/speculative.h): prompt-lookup drafts, and generation that is
// token-identical to plain decoding — greedy and seeded sampling, on every fixture variant
// (sliding window 6-8, so rounds roll the rings back past the window), for several draft sizes.
#include <gtest/gtest.h>

#include <optional>
#include <random>

#include "engine/draft_model.h"
#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/scheduler.h"
#include "engine/speculative.h"
#include "io/json_file.h"
#include "kiln/kiln.h"
#include "scheduled_cases.h"

namespace kiln {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

TEST(PromptLookup, DraftsWhatFollowedTheMostRecentLongestMatch) {
  SpeculativeOptions options;
  options.type = SpeculativeType::kNgram;
  options.ngram_max = 3;
  std::vector<int32_t> drafts;
  // Suffix "7 8 9" occurred at 1..3 (followed by 4 5) and at 6..8 in a 2-gram "8 9" sense; the
  // 3-gram match wins.
  const std::vector<int32_t> history = {0, 7, 8, 9, 4, 5, 1, 8, 9, 2, 7, 8, 9};
  EXPECT_EQ(DraftByPromptLookup(history, options, 4, drafts), 4);
  EXPECT_EQ(drafts, (std::vector<int32_t>{4, 5, 1, 8}));
  // Capped by max, appended after what is there.
  drafts = {42};
  EXPECT_EQ(DraftByPromptLookup(history, options, 1, drafts), 1);
  EXPECT_EQ(drafts, (std::vector<int32_t>{42, 4}));
  // Only a 1-gram recurs ("9" last seen at 8): the most recent occurrence is used.
  drafts.clear();
  const std::vector<int32_t> short_match = {3, 9, 6, 5, 9, 2, 1, 9};
  EXPECT_EQ(DraftByPromptLookup(short_match, options, 8, drafts), 3);
  EXPECT_EQ(drafts, (std::vector<int32_t>{2, 1, 9}));
  // Nothing recurs; a minimum of 2 rules out the 1-gram.
  drafts.clear();
  EXPECT_EQ(DraftByPromptLookup(std::vector<int32_t>{1, 2, 3, 4}, options, 8, drafts), 0);
  options.ngram_min = 2;
  EXPECT_EQ(DraftByPromptLookup(short_match, options, 8, drafts), 0);
  EXPECT_TRUE(drafts.empty());
  // A run of one token drafts its continuation.
  options.ngram_min = 1;
  EXPECT_EQ(DraftByPromptLookup(std::vector<int32_t>{5, 5, 5, 5}, options, 8, drafts), 1);
  EXPECT_EQ(drafts, (std::vector<int32_t>{5}));
}

TEST(PromptLookup, OptionsAreValidated) {
  SpeculativeOptions options;
  options.draft_max = 65;
  EXPECT_EQ(options.Validate().error().message(), "draft max must be in [0, 64], got 65");
  options.draft_max = 4;
  options.ngram_min = 3;
  options.ngram_max = 2;
  EXPECT_EQ(options.Validate().error().message(), "n-gram sizes must satisfy 1 <= min <= max <= 64, got min 3 and max 2");
  EXPECT_EQ(ParseSpeculativeType("ngram").value(), SpeculativeType::kNgram);
  EXPECT_EQ(ParseSpeculativeType("bogus").error().message(), "unknown speculative type 'bogus' (expected mtp, ngram, draft or none)");
  EXPECT_EQ(*ParseSpeculativeType("mtp"), SpeculativeType::kMtp);
}

GenerationResult Generate(LoadedModel& model, const std::vector<int32_t>& prompt, GenerateOptions options) {
  auto session = model.NewSession();
  EXPECT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  auto result = generator.Generate(prompt, options);
  EXPECT_TRUE(result.has_value()) << result.error().ToString();
  return result.has_value() ? std::move(*result) : GenerationResult{};
}

class SpeculativeParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SpeculativeParityTest, OutputEqualsPlainDecoding) {
  const std::string dir = FixtureDir(GetParam());
  auto document = ReadJsonFile(dir + "/reference.json");
  ASSERT_TRUE(document.has_value());
  const std::vector<int32_t> prompt = (*document)["greedy_prompt"].get<std::vector<int32_t>>();
  LoadOptions load;
  load.max_tokens = 8;
  load.max_context = 96;
  load.num_threads = 2;
  auto model = LoadedModel::Load(dir, load);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  for (float temperature : {0.0f, 0.9f}) {
    GenerateOptions options;
    options.max_new_tokens = 60;
    options.ignore_eos = true;
    options.sampling.temperature = temperature;
    options.sampling.seed = 11;
    const GenerationResult plain = Generate(**model, prompt, options);
    ASSERT_EQ(plain.tokens.size(), 60u);
    for (int draft_max : {1, 3, 7}) {
      options.speculative.type = SpeculativeType::kNgram;
      options.speculative.draft_max = draft_max;
      const GenerationResult speculative = Generate(**model, prompt, options);
      EXPECT_EQ(speculative.tokens, plain.tokens) << "temperature " << temperature << ", draft max " << draft_max;
      EXPECT_EQ(speculative.stop_reason, StopReason::kMaxTokens);
      // Every step emits the tokens it accepted plus one.
      EXPECT_EQ(speculative.decode_steps + 1 + speculative.accepted_draft_tokens, 60) << draft_max;
      EXPECT_LE(speculative.accepted_draft_tokens, speculative.draft_tokens);
      if (temperature == 0.0f) {
        EXPECT_GT(speculative.accepted_draft_tokens, 0) << "the fixtures' greedy output repeats";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SpeculativeParityTest, ::testing::Values("g31b", "e2b", "e4b", "a26b", "g12b"));

TEST(Speculative, StopsAndContextEndAsInPlainDecoding) {
  const std::string dir = FixtureDir("g31b");
  auto document = ReadJsonFile(dir + "/reference.json");
  const std::vector<int32_t> prompt = (*document)["greedy_prompt"].get<std::vector<int32_t>>();
  LoadOptions load;
  load.max_tokens = 8;
  load.max_context = 40;  // 24 prompt tokens: the context ends mid-round
  load.num_threads = 2;
  auto model = LoadedModel::Load(dir, load);
  ASSERT_TRUE(model.has_value());
  GenerateOptions options;
  options.max_new_tokens = 100;
  options.ignore_eos = true;
  const GenerationResult plain = Generate(**model, prompt, options);
  options.speculative.type = SpeculativeType::kNgram;
  options.speculative.draft_max = 6;
  const GenerationResult speculative = Generate(**model, prompt, options);
  EXPECT_EQ(plain.stop_reason, StopReason::kContextFull);
  EXPECT_EQ(speculative.stop_reason, StopReason::kContextFull);
  EXPECT_EQ(speculative.tokens, plain.tokens);
  // A stop id inside an accepted run of drafts ends generation there.
  ASSERT_GT(plain.tokens.size(), 12u);
  options.stop_token_ids = {plain.tokens[10]};
  options.ignore_eos = false;
  options.speculative.type = SpeculativeType::kNone;
  const GenerationResult plain_stop = Generate(**model, prompt, options);
  options.speculative.type = SpeculativeType::kNgram;
  const GenerationResult speculative_stop = Generate(**model, prompt, options);
  EXPECT_EQ(plain_stop.stop_reason, StopReason::kEos);
  EXPECT_EQ(speculative_stop.tokens, plain_stop.tokens);
  // max tokens is exact.
  options.stop_token_ids.clear();
  options.max_new_tokens = 5;
  EXPECT_EQ(Generate(**model, prompt, options).tokens, std::vector<int32_t>(plain.tokens.begin(), plain.tokens.begin() + 5));
}

// A draft model: another fixture (same 512-token vocabulary) and the target itself, whose drafts
// the target must accept all but where the context or max tokens cut a round short.
TEST(Speculative, DraftModelOutputEqualsPlainDecoding) {
  auto document = ReadJsonFile(FixtureDir("g31b") + "/reference.json");
  const std::vector<int32_t> prompt = (*document)["greedy_prompt"].get<std::vector<int32_t>>();
  LoadOptions load;
  load.max_tokens = 8;
  load.max_context = 96;
  load.num_threads = 2;
  auto target = LoadedModel::Load(FixtureDir("g31b"), load);
  ASSERT_TRUE(target.has_value()) << target.error().ToString();
  for (const char* draft_name : {"e2b", "g31b"}) {
    auto draft = LoadedModel::Load(FixtureDir(draft_name), load);
    ASSERT_TRUE(draft.has_value());
    auto drafter = ModelDrafter::Create(std::move(*draft), 512);
    ASSERT_TRUE(drafter.has_value()) << drafter.error().ToString();
    for (float temperature : {0.0f, 0.9f}) {
      GenerateOptions options;
      options.max_new_tokens = 50;
      options.ignore_eos = true;
      options.sampling.temperature = temperature;
      options.sampling.seed = 3;
      const GenerationResult plain = Generate(**target, prompt, options);
      options.speculative.type = SpeculativeType::kDraft;
      options.speculative.drafter = drafter->get();
      options.speculative.draft_max = 4;
      const GenerationResult speculative = Generate(**target, prompt, options);
      EXPECT_EQ(speculative.tokens, plain.tokens) << draft_name << " at temperature " << temperature;
      EXPECT_GT(speculative.draft_tokens, 0);
      if (std::string(draft_name) == "g31b" && temperature == 0.0f) {
        EXPECT_EQ(speculative.accepted_draft_tokens, speculative.draft_tokens) << "a model agrees with its own greedy drafts";
        EXPECT_LE(speculative.decode_steps, 49 / 5 + 1);
      }
    }
  }
  auto other_vocab = LoadedModel::Load(std::string(KILN_BUNDLED_MODEL_DIR), load);
  ASSERT_TRUE(other_vocab.has_value());
  EXPECT_EQ(ModelDrafter::Create(std::move(*other_vocab), 512).error().message(),
            "the draft model " + std::string(KILN_BUNDLED_MODEL_DIR) +
                " has a vocabulary of 8192 tokens, the target's has 512; a draft model must share the target's tokenizer");
}

// Several requests speculating in one batch (each with its own drafts and rollback), mixed with
// plain ones, prefills and preemptions from a small pool: every output equals its solo plain run.
TEST(Speculative, ScheduledRequestsEqualPlainSoloRuns) {
  LoadOptions load;
  load.max_tokens = 16;
  load.max_sequences = 4;
  load.max_context = 96;
  load.kv_block_size = 4;
  load.num_threads = 2;
  auto model = LoadedModel::Load(FixtureDir("e2b"), load);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  auto solo_model = LoadedModel::Load(FixtureDir("e2b"), [&] {
    LoadOptions solo = load;
    solo.max_sequences = 1;
    return solo;
  }());
  ASSERT_TRUE(solo_model.has_value());
  std::vector<testing::ScheduledCase> cases = testing::RandomCases(**solo_model, 10, 5, 20, 40, [](size_t i, GenerateOptions& options) {
    if (i % 4 == 3) return;  // every fourth one decodes plainly beside the others
    options.speculative.type = SpeculativeType::kNgram;
    options.speculative.draft_max = 1 + static_cast<int>(i % 6);
  });
  RunnerOptions runner_options;
  runner_options.num_threads = 2;
  // Room for two sequences at the full context: the four running ones preempt each other.
  runner_options.kv_pool = KvPoolSize::ForSequences((*model)->program(), 2);
  auto runner = (*model)->NewRunner(runner_options);
  ASSERT_TRUE(runner.has_value()) << runner.error().ToString();
  Scheduler scheduler(**runner, nullptr);
  testing::RunScheduled(scheduler, cases);
  int64_t accepted = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(cases[i].got.has_value()) << i;
    ASSERT_TRUE(cases[i].got->has_value()) << cases[i].got->error().ToString();
    EXPECT_EQ((*cases[i].got)->tokens, cases[i].expected) << "request " << i;
    accepted += (*cases[i].got)->accepted_draft_tokens;
  }
  const SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.accepted_draft_tokens, accepted);
  EXPECT_GT(accepted, 0);
  EXPECT_GE(stats.draft_tokens, accepted);
  EXPECT_TRUE((*runner)->pool().AllFree() || stats.cached_blocks > 0);
}

// The public API: a model loaded with speculative "ngram" generates the same text as one
// without, and counts its drafts.
TEST(Speculative, ModelOptionAppliesToEveryRequest) {
  ModelOptions options;
  options.context = 512;
  options.chunk = 64;
  options.parallel = 2;
  options.threads = 2;
  auto plain = Model::Load(KILN_BUNDLED_MODEL_DIR, options);
  ASSERT_TRUE(plain.has_value()) << plain.error().ToString();
  options.speculative = "ngram";
  options.draft_max = 4;
  auto speculative = Model::Load(KILN_BUNDLED_MODEL_DIR, options);
  ASSERT_TRUE(speculative.has_value()) << speculative.error().ToString();
  GenerationRequest request;
  const std::string passage = "The miller walked the length of his dam before breakfast and found that one gate was lost. ";
  request.prompt = passage + passage + "The miller walked";
  request.max_tokens = 40;
  request.ignore_eos = true;
  request.sampling = SamplingParams{};  // greedy
  auto expected = (*plain)->Generate(request);
  auto got = (*speculative)->Generate(request);
  ASSERT_TRUE(expected.has_value() && got.has_value());
  EXPECT_EQ(got->tokens, expected->tokens);
  EXPECT_EQ(got->text, expected->text);
  EXPECT_EQ(expected->draft_tokens, 0);
  EXPECT_GT(got->accepted_draft_tokens, 0);
  EXPECT_EQ((*speculative)->stats().accepted_draft_tokens, got->accepted_draft_tokens);
  options.speculative = "draft";  // without a draft model
  EXPECT_EQ(Model::Load(KILN_BUNDLED_MODEL_DIR, options).error().code(), ErrorCode::kInvalidArgument);
  options.speculative = "bogus";
  EXPECT_EQ(Model::Load(KILN_BUNDLED_MODEL_DIR, options).error().message(),
            "unknown speculative type 'bogus' (expected mtp, ngram, draft or none)");
  options.speculative = "ngram";
  options.draft_max = 100;
  EXPECT_EQ(Model::Load(KILN_BUNDLED_MODEL_DIR, options).error().message(), "draft max must be in [0, 64], got 100");
}

}  // namespace
}  // namespace kiln
