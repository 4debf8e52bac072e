// Generation on the fixtures: greedy continuation equal to transformers' generate(), seeded
// sampling reproducible, prefix reuse (Session::Rewind) equal to a fresh prefill, stops,
// context limits, cancellation, and the text path with a test tokenizer (tiny_text_model.h).
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <filesystem>

#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/model_text.h"
#include "io/json_file.h"
#include "tiny_text_model.h"

namespace kiln {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

std::vector<int32_t> Ids(const std::string& dir, const char* key) {
  auto document = ReadJsonFile(dir + "/reference.json");
  EXPECT_TRUE(document.has_value());
  return (*document)[key].get<std::vector<int32_t>>();
}

std::unique_ptr<LoadedModel> Load(const std::string& dir, int64_t chunk, int64_t context = 64) {
  LoadOptions options;
  options.max_tokens = chunk;
  options.max_context = context;
  options.num_threads = 2;
  auto model = LoadedModel::Load(dir, options);
  EXPECT_TRUE(model.has_value()) << model.error().ToString();
  return model.has_value() ? std::move(*model) : nullptr;
}

class GreedyParityTest : public ::testing::TestWithParam<std::string> {};

// reference.json's greedy_tokens: model.generate(greedy_prompt, do_sample=False,
// max_new_tokens=10) with EOS disabled. Chunk 5: the 24-token prompt runs as 5+5+5+5+4.
TEST_P(GreedyParityTest, GreedyContinuationEqualsTransformers) {
  const std::string dir = FixtureDir(GetParam());
  const std::vector<int32_t> prompt = Ids(dir, "greedy_prompt");
  const std::vector<int32_t> expected = Ids(dir, "greedy_tokens");
  auto model = Load(dir, /*chunk=*/5);
  ASSERT_NE(model, nullptr);
  auto text = LoadModelText(*model);
  ASSERT_TRUE(text.has_value()) << text.error().ToString();
  EXPECT_EQ(text->stop_token_ids, (std::vector<int32_t>{1}));  // config eos_token_id
  EXPECT_FALSE(text->tokenizer.has_value());
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  GenerateOptions options;
  options.max_new_tokens = static_cast<int64_t>(expected.size());
  options.stop_token_ids = text->stop_token_ids;
  options.ignore_eos = true;
  options.sampling = text->default_sampling;  // greedy: generation_config has no do_sample
  auto result = generator.Generate(prompt, options);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->tokens, expected);
  EXPECT_EQ(result->stop_reason, StopReason::kMaxTokens);
  EXPECT_EQ(result->prompt_tokens, 24);
  EXPECT_EQ(result->decode_steps, static_cast<int64_t>(expected.size()) - 1);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GreedyParityTest,
                         ::testing::Values("e2b", "e4b", "g12b", "a26b", "g31b", "e4b_multimodal",
                                           "g12b_legacy_config", "g31b_sharded"));

TEST(Generator, SeededSamplingIsReproducible) {
  auto model = Load(FixtureDir("g31b"), 8);
  ASSERT_NE(model, nullptr);
  const std::vector<int32_t> prompt = Ids(FixtureDir("g31b"), "prompt");
  auto run = [&](uint64_t seed) {
    auto session = model->NewSession();
    EXPECT_TRUE(session.has_value());
    Generator generator(*session, nullptr);
    GenerateOptions options;
    options.max_new_tokens = 20;
    options.sampling = {.temperature = 1.5f, .top_k = 50, .top_p = 0.95f, .seed = seed};
    auto result = generator.Generate(prompt, options);
    EXPECT_TRUE(result.has_value());
    return result->tokens;
  };
  const std::vector<int32_t> first = run(42);
  EXPECT_EQ(first.size(), 20u);
  EXPECT_EQ(run(42), first);
  EXPECT_NE(run(43), first);
}

// The logits the first new token is sampled from, with a fresh session and full prefill.
std::vector<float> FreshLogits(LoadedModel& model, const std::vector<int32_t>& prompt) {
  auto session = model.NewSession();
  EXPECT_TRUE(session.has_value());
  auto logits = session->Prefill(prompt);
  EXPECT_TRUE(logits.has_value());
  return *logits;
}

class PrefixReuseTest : public ::testing::TestWithParam<std::string> {};

// Turn 1 caches prompt + generated tokens; turn 2 extends that (reuse), turn 3 diverges inside
// it (rewind), turn 4 diverges before the sliding ring's reach (full prefill). Each turn's
// first logits must equal a fresh prefill's, up to summation order (a fresh prefill splits the
// prompt into other chunks).
TEST_P(PrefixReuseTest, ReusedPrefixGivesTheLogitsOfAFreshPrefill) {
  const std::string dir = FixtureDir(GetParam());
  auto model = Load(dir, /*chunk=*/4);
  ASSERT_NE(model, nullptr);
  const std::vector<int32_t> base = Ids(dir, "prompt");  // 24 ids
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  GenerateOptions options;
  options.max_new_tokens = 3;
  options.keep_logits = true;
  const int64_t vocab = session->vocab_size();

  auto check = [&](const std::vector<int32_t>& prompt, int64_t expected_reuse, const char* what) {
    auto result = generator.Generate(prompt, options);
    ASSERT_TRUE(result.has_value()) << result.error().ToString();
    EXPECT_EQ(result->reused_tokens, expected_reuse) << what;
    const std::vector<float> fresh = FreshLogits(*model, prompt);
    float worst = 0;
    for (int64_t i = 0; i < vocab; ++i) worst = std::max(worst, std::abs(fresh[i] - result->logits[i]));
    EXPECT_LT(worst, 1e-4f) << what;
  };
  // Turn 1: nothing cached.
  std::vector<int32_t> turn1(base.begin(), base.begin() + 16);
  check(turn1, 0, "turn 1");
  // The cache now holds turn1 + 2 generated tokens (the third was sampled, never run).
  std::vector<int32_t> turn2 = generator.cached_tokens();
  ASSERT_EQ(turn2.size(), 18u);
  turn2.insert(turn2.end(), base.begin() + 16, base.end());
  check(turn2, 18, "turn 2: extends the cache");
  // Diverge 3 tokens before the end of the cache (26 + 2 = 28 tokens): within the ring's reach.
  std::vector<int32_t> turn3(generator.cached_tokens().begin(), generator.cached_tokens().end() - 3);
  turn3.push_back(7);
  turn3.push_back(9);
  check(turn3, 25, "turn 3: rewinds 3 positions");
  // Diverge at position 5: every fixture has sliding layers whose ring (window + 3 positions)
  // no longer holds it, so the whole prompt is prefilled again.
  std::vector<int32_t> turn4(base.begin(), base.begin() + 5);
  turn4.push_back(11);
  check(turn4, 0, "turn 4: too far back for the ring");
  // The same prompt twice: everything but the last token is reused.
  check(turn4, 5, "turn 5: repeat");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PrefixReuseTest, ::testing::Values("e2b", "e4b", "g12b", "a26b", "g31b"));

TEST(SessionRewind, BoundsFollowTheSlidingRing) {
  // g31b: sliding window 6, Tmax 4, ring of 6 + 4 - 1 = 9 positions.
  auto model = Load(FixtureDir("g31b"), 4);
  ASSERT_NE(model, nullptr);
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  const std::vector<int32_t> prompt = Ids(FixtureDir("g31b"), "prompt");
  ASSERT_TRUE(session->Prefill(prompt).has_value());  // positions 0..23 written
  // Rewinding to L needs positions [L - 5, L) still in the ring: L - 5 >= 24 - 9, so L >= 20.
  EXPECT_TRUE(session->CanRewind(20));
  EXPECT_FALSE(session->CanRewind(19));
  EXPECT_TRUE(session->CanRewind(0));
  EXPECT_FALSE(session->CanRewind(25));
  Status too_far = session->Rewind(19);
  EXPECT_EQ(too_far.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(session->length(), 24);  // unchanged
  EXPECT_EQ(session->Rewind(30).error().message(), "cannot rewind to 30 positions: the sequence holds 24");
  ASSERT_TRUE(session->Rewind(21).ok());
  EXPECT_EQ(session->length(), 21);
  // The furthest position written (24) still bounds the next rewind: 19 stays out of reach.
  EXPECT_FALSE(session->CanRewind(19));
  session->Reset();
  EXPECT_EQ(session->length(), 0);
}

TEST(Generator, ContextLimits) {
  auto model = Load(FixtureDir("g12b"), 8, /*context=*/20);
  ASSERT_NE(model, nullptr);
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  const std::vector<int32_t> prompt = Ids(FixtureDir("g12b"), "prompt");  // 24 > 20
  auto too_long = generator.Generate(prompt, {});
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(too_long.error().message(),
            "the prompt has 24 tokens, more than the context of 20 tokens; raise --ctx or shorten the prompt");
  // 16 prompt tokens: 4 more fit, and the 5th token is sampled from the full cache's logits.
  GenerateOptions options;
  options.max_new_tokens = 100;
  auto full = generator.Generate(std::span(prompt).first(16), options);
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->stop_reason, StopReason::kContextFull);
  EXPECT_EQ(full->tokens.size(), 5u);
  EXPECT_EQ(generator.Generate(std::vector<int32_t>{}, {}).error().message(),
            "the prompt is empty: give at least one token");
  GenerateOptions bad;
  bad.sampling.top_p = 0.0f;
  EXPECT_EQ(generator.Generate(prompt, bad).error().message(), "top-p must be in (0, 1], got 0");
}

TEST(Generator, StopsOnEosAndOnCancel) {
  auto model = Load(FixtureDir("g12b"), 8);
  ASSERT_NE(model, nullptr);
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  const std::vector<int32_t> prompt = Ids(FixtureDir("g12b"), "greedy_prompt");
  // g12b's greedy run is 136, 233 x8, 50: with 233 as a stop id it stops at the second token.
  GenerateOptions options;
  options.max_new_tokens = 10;
  options.stop_token_ids = {233};
  auto eos = generator.Generate(prompt, options);
  ASSERT_TRUE(eos.has_value());
  EXPECT_EQ(eos->tokens, (std::vector<int32_t>{136, 233}));
  EXPECT_EQ(eos->stop_reason, StopReason::kEos);
  EXPECT_STREQ(StopReasonName(eos->stop_reason), "eos");
  // Cancel after the third token: the flag is polled before every step.
  std::atomic<bool> cancel{false};
  GenerateOptions cancelling;
  cancelling.max_new_tokens = 10;
  cancelling.cancel = &cancel;
  cancelling.on_token = [&](const GeneratedToken& token) { cancel = token.index == 2; };
  auto cancelled = generator.Generate(prompt, cancelling);
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->tokens.size(), 3u);
  EXPECT_EQ(cancelled->stop_reason, StopReason::kCancelled);
  EXPECT_EQ(cancelled->reused_tokens, 23);  // the prompt was cached by the previous call
}

// A prompt of several prefill steps reports its progress before the first step and after each;
// cancelled part way, the result says how much of the prompt the cache holds.
TEST(Generator, PrefillProgressAndACancelDuringThePrompt) {
  auto model = Load(FixtureDir("g12b"), 8);  // steps of at most 8 tokens
  ASSERT_NE(model, nullptr);
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  const std::vector<int32_t> prompt = Ids(FixtureDir("g12b"), "greedy_prompt");  // 24 tokens
  ASSERT_EQ(prompt.size(), 24u);
  std::vector<std::array<int64_t, 3>> calls;
  GenerateOptions options;
  options.max_new_tokens = 1;
  options.on_prefill_progress = [&](int64_t done, int64_t total, int64_t reused) { calls.push_back({done, total, reused}); };
  auto whole = generator.Generate(prompt, options);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(calls, (std::vector<std::array<int64_t, 3>>{{0, 24, 0}, {8, 24, 0}, {16, 24, 0}, {24, 24, 0}}));
  EXPECT_EQ(whole->prefilled_tokens, 24);
  // The same prompt again: 23 tokens reused, one step, no progress.
  calls.clear();
  auto again = generator.Generate(prompt, options);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(calls.empty());
  EXPECT_EQ(again->prefilled_tokens, 24);
  // Cancelled after the second step of a fresh prefill.
  generator.Reset();
  std::atomic<bool> cancel{false};
  options.cancel = &cancel;
  options.on_prefill_progress = [&](int64_t done, int64_t, int64_t) { cancel = done >= 16; };
  auto cancelled = generator.Generate(prompt, options);
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->stop_reason, StopReason::kCancelled);
  EXPECT_EQ(cancelled->prefilled_tokens, 16);
  EXPECT_TRUE(cancelled->tokens.empty());
}

TEST(Generator, TextStreamsAndStopStringsSpanTokens) {
  const testing::TextModelDir text_model(
      FixtureDir("g31b"), (std::filesystem::temp_directory_path() / "kiln_engine_text_g31b").string());
  const std::string& dir = text_model.path();
  auto model = Load(dir, 8);
  ASSERT_NE(model, nullptr);
  auto text = LoadModelText(*model);
  ASSERT_TRUE(text.has_value()) << text.error().ToString();
  ASSERT_TRUE(text->tokenizer.has_value());
  EXPECT_EQ(text->stop_token_ids, (std::vector<int32_t>{1}));
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, &text->tokenizer->tokenizer);
  const std::vector<int32_t> prompt = Ids(FixtureDir("g31b"), "greedy_prompt");
  // Greedy: 318 311 318 376 ... reads " w318 w311 w318 w376"; the last, 215, is byte 0xD3,
  // the start of a 2-byte character that never completes: U+FFFD when the stream ends.
  GenerateOptions options;
  options.max_new_tokens = 10;
  std::string streamed;
  options.on_token = [&](const GeneratedToken& token) { streamed += token.text; };
  auto plain = generator.Generate(prompt, options);
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->text, " w318 w311 w318 w376 w376 w376 w324 w382 w278\uFFFD");
  EXPECT_EQ(streamed, plain->text);
  // "18 w3" spans tokens 318 and 311: the text stops before it, after the second token.
  options.stop_strings = {"18 w3"};
  streamed.clear();
  auto stopped = generator.Generate(prompt, options);
  ASSERT_TRUE(stopped.has_value());
  EXPECT_EQ(stopped->stop_reason, StopReason::kStopString);
  EXPECT_EQ(stopped->stop_string, "18 w3");
  EXPECT_EQ(stopped->tokens, (std::vector<int32_t>{318, 311}));
  EXPECT_EQ(stopped->text, " w3");
  EXPECT_EQ(streamed, " w3");
  // A stop string that starts but never completes is released at the end.
  options.stop_strings = {" w278!"};
  auto tail = generator.Generate(prompt, options);
  ASSERT_TRUE(tail.has_value());
  EXPECT_EQ(tail->text, plain->text);
  EXPECT_EQ(tail->stop_reason, StopReason::kMaxTokens);
  // Chat prompt: "<bos><user>hi\n<model>" through the template, then encoded.
  auto chat = EncodeChat(*text->tokenizer, nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])"));
  ASSERT_TRUE(chat.has_value()) << chat.error().ToString();
  EXPECT_EQ(text->tokenizer->tokenizer.Decode(*chat), "<bos><user>hi\n<model>");
  std::filesystem::remove_all(dir);
}

TEST(Generator, TopLogprobsDescribeTheGreedyChoice) {
  auto model = Load(FixtureDir("e2b"), 8);
  ASSERT_NE(model, nullptr);
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  GenerateOptions options;
  options.max_new_tokens = 3;
  options.top_logprobs = 4;
  std::vector<GeneratedToken> tokens;
  options.on_token = [&](const GeneratedToken& token) { tokens.push_back(token); };
  auto result = generator.Generate(Ids(FixtureDir("e2b"), "greedy_prompt"), options);
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(tokens.size(), 3u);
  for (const GeneratedToken& token : tokens) {
    ASSERT_EQ(token.top_logprobs.size(), 4u);
    EXPECT_EQ(token.top_logprobs[0].id, token.id);  // greedy picks the most likely
    EXPECT_NEAR(token.top_logprobs[0].logprob, token.logprob, 1e-5);
    EXPECT_LT(token.logprob, 0.0f);
    EXPECT_GE(token.top_logprobs[0].logprob, token.top_logprobs[3].logprob);
  }
}

}  // namespace
}  // namespace kiln
