// Samplers, checked exactly where the answer is exact (greedy, filters' candidate sets,
// validation messages, seeds) and statistically over many draws where it is not.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "engine/sampler.h"
#include "engine/stop_strings.h"

namespace kiln {
namespace {

// Logits whose softmax at temperature 1 is exactly `probabilities` (up to a constant).
std::vector<float> LogitsFor(const std::vector<double>& probabilities) {
  std::vector<float> logits;
  for (double p : probabilities) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

// A fixed random logit vector of `vocab` entries, N(0, 2).
std::vector<float> RandomLogits(size_t vocab, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(vocab);
  for (float& logit : logits) logit = normal(engine);
  return logits;
}

std::map<int32_t, int> Draw(const SamplingOptions& options, const std::vector<float>& logits, int draws) {
  Sampler sampler(options);
  std::map<int32_t, int> counts;
  for (int i = 0; i < draws; ++i) {
    std::vector<float> copy = logits;
    ++counts[sampler.Sample(copy, {})];
  }
  return counts;
}

// The k ids with the largest logits.
std::vector<int32_t> TopIds(const std::vector<float>& logits, size_t k) {
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  ids.resize(k);
  return ids;
}

TEST(SamplingOptions, InvalidValuesNameTheFieldAndRange) {
  auto message = [](SamplingOptions options) { return options.Validate().error().message(); };
  EXPECT_TRUE(SamplingOptions{}.Validate().ok());
  EXPECT_EQ(message({.temperature = -1.0f}), "temperature must be >= 0 (0 = greedy), got -1");
  EXPECT_EQ(message({.temperature = NAN}), "temperature must be >= 0 (0 = greedy), got nan");
  EXPECT_EQ(message({.top_k = -3}), "top-k must be >= 0 (0 = off), got -3");
  EXPECT_EQ(message({.top_p = 0.0f}), "top-p must be in (0, 1], got 0");
  EXPECT_EQ(message({.top_p = 1.5f}), "top-p must be in (0, 1], got 1.5");
  EXPECT_EQ(message({.min_p = 1.0f}), "min-p must be in [0, 1), got 1");
  EXPECT_EQ(message({.repetition_penalty = 0.0f}), "repetition penalty must be > 0 (1 = off), got 0");
  EXPECT_EQ(SamplingOptions{.top_p = 2.0f}.Validate().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(message({.presence_penalty = 2.5f}), "presence penalty must be in [-2, 2] (0 = off), got 2.5");
  EXPECT_EQ(message({.frequency_penalty = -3.0f}), "frequency penalty must be in [-2, 2] (0 = off), got -3");
  EXPECT_EQ(message({.frequency_penalty = NAN}), "frequency penalty must be in [-2, 2] (0 = off), got nan");
  EXPECT_TRUE(SamplingOptions({.presence_penalty = -2.0f, .frequency_penalty = 2.0f}).Validate().ok());
}

TEST(SamplingOptions, PenalizedIsAnyPenaltyOn) {
  EXPECT_FALSE(SamplingOptions{}.penalized());
  EXPECT_TRUE(SamplingOptions{.repetition_penalty = 1.1f}.penalized());
  EXPECT_TRUE(SamplingOptions{.presence_penalty = 0.5f}.penalized());
  EXPECT_TRUE(SamplingOptions{.frequency_penalty = -0.5f}.penalized());
}

TEST(Sampler, GreedyIsTheArgmaxWithLowestIdOnTies) {
  Sampler sampler({});
  std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(sampler.Sample(logits, {}), 1);
  EXPECT_EQ(ArgMax(std::vector<float>{}), -1);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesSubtractOverGeneratedTokensOnly) {
  Sampler sampler({.presence_penalty = 0.25f, .frequency_penalty = 0.5f});
  std::vector<float> logits = {1.0f, 2.0f, 3.0f, 4.0f, 0.5f};
  // Prompt {3, 3}, then generated {0, 0, 2}: id 3 is only in the prompt and keeps its logit.
  const std::vector<int32_t> history = {3, 3, 0, 0, 2};
  // 0: 1 - (2 x 0.5 + 0.25) = -0.25; 2: 3 - (1 x 0.5 + 0.25) = 2.25; 1, 3, 4 untouched.
  EXPECT_EQ(sampler.Sample(logits, history, /*prompt_tokens=*/2), 3);
  EXPECT_EQ(logits, (std::vector<float>{-0.25f, 2.0f, 2.25f, 4.0f, 0.5f}));
}

TEST(Sampler, NegativePresenceAndFrequencyPenaltiesRaiseRepeatedTokens) {
  Sampler sampler({.presence_penalty = -1.0f, .frequency_penalty = -0.5f});
  std::vector<float> logits = {1.0f, 3.0f};
  const std::vector<int32_t> generated = {0, 0, 0};
  // 0: 1 + 3 x 0.5 + 1 = 3.5 overtakes id 1's 3.
  EXPECT_EQ(sampler.Sample(logits, generated), 0);
  EXPECT_EQ(logits, (std::vector<float>{3.5f, 3.0f}));
}

TEST(Sampler, RepetitionPenaltyComesBeforePresenceAndFrequency) {
  Sampler sampler({.repetition_penalty = 2.0f, .repetition_window = 0, .presence_penalty = 1.0f, .frequency_penalty = 0.0f});
  std::vector<float> logits = {4.0f, -1.0f, 0.0f};
  const std::vector<int32_t> history = {1, 0};  // prompt {1}, generated {0}
  // 0: 4 / 2 - 1 = 1; 1: -1 x 2 = -2 (prompt: no presence penalty); 2 untouched.
  const std::vector<Candidate> greedy = sampler.Distribution(logits, history, /*prompt_tokens=*/1);
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -2.0f, 0.0f}));
  ASSERT_EQ(greedy.size(), 1u);
  EXPECT_EQ(greedy[0].id, 0);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOncePerId) {
  Sampler sampler({.repetition_penalty = 2.0f, .repetition_window = 3});
  std::vector<float> logits = {4.0f, -1.0f, 3.0f, 3.5f};
  const std::vector<int32_t> history = {3, 0, 1, 1};  // window of 3: ids 0, 1, 1 (id 3 is outside)
  // 0: 4 / 2 = 2; 1: -1 * 2 = -2 (once, though it occurs twice); 3 untouched: argmax is 3.
  EXPECT_EQ(sampler.Sample(logits, history), 3);
  EXPECT_EQ(logits, (std::vector<float>{2.0f, -2.0f, 3.0f, 3.5f}));
}

TEST(Sampler, SameSeedSameTokensOtherSeedOtherTokens) {
  const std::vector<float> logits = RandomLogits(512, 1);
  auto run = [&](uint64_t seed) {
    Sampler sampler({.temperature = 1.0f, .seed = seed});
    std::vector<int32_t> ids;
    for (int i = 0; i < 50; ++i) {
      std::vector<float> copy = logits;
      ids.push_back(sampler.Sample(copy, {}));
    }
    return ids;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(Sampler, TopKNeverLeavesTheKBest) {
  const std::vector<float> logits = RandomLogits(1000, 2);
  for (int64_t k : {1, 5, 40}) {
    const std::vector<int32_t> best = TopIds(logits, static_cast<size_t>(k));
    // Temperature 5 flattens the distribution, so without top-k most draws would land outside.
    const auto counts = Draw({.temperature = 5.0f, .top_k = k, .seed = 3}, logits, 20000);
    for (const auto& [id, count] : counts) {
      EXPECT_NE(std::find(best.begin(), best.end(), id), best.end()) << "k " << k << " drew id " << id;
    }
    EXPECT_EQ(counts.size(), static_cast<size_t>(k));  // and every one of them is reachable
  }
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingTheMass) {
  // Probabilities 0.4, 0.3, 0.2, 0.1: p = 0.65 needs the first two (0.7 >= 0.65).
  const std::vector<float> logits = LogitsFor({0.1, 0.4, 0.2, 0.3});
  Sampler nucleus({.temperature = 1.0f, .top_p = 0.65f});
  std::vector<float> copy = logits;
  const std::vector<Candidate> kept = nucleus.Distribution(copy, {});
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].id, 1);
  EXPECT_EQ(kept[1].id, 3);
  EXPECT_NEAR(kept[0].probability, 0.4 / 0.7, 1e-6);
  // p = 0.7 exactly reaches the mass with two tokens too; p = 0.71 needs a third.
  copy = logits;
  EXPECT_EQ(Sampler({.temperature = 1.0f, .top_p = 0.71f}).Distribution(copy, {}).size(), 3u);
  // Over many draws the frequencies follow the renormalized nucleus: 4/7 and 3/7.
  const int draws = 40000;
  const auto counts = Draw({.temperature = 1.0f, .top_p = 0.65f, .seed = 11}, logits, draws);
  ASSERT_EQ(counts.size(), 2u);
  // Binomial standard deviation sqrt(n p (1 - p)) ~ 99 draws; allow 5 sigma.
  EXPECT_NEAR(counts.at(1), draws * 4.0 / 7.0, 500);
  EXPECT_NEAR(counts.at(3), draws * 3.0 / 7.0, 500);
}

TEST(Sampler, TopPOnALargeVocabularyMatchesAFullSort) {
  // The nucleus is found by widening partial sorts; check it against a full sort.
  const std::vector<float> logits = RandomLogits(20000, 4);
  for (float p : {0.1f, 0.5f, 0.9f, 0.99f}) {
    std::vector<double> probabilities(logits.size());
    const float max_logit = *std::max_element(logits.begin(), logits.end());
    double total = 0;
    for (size_t i = 0; i < logits.size(); ++i) total += probabilities[i] = std::exp(double(logits[i] - max_logit));
    std::vector<int32_t> order = TopIds(logits, logits.size());
    size_t expected = 0;
    for (double mass = 0; expected < order.size() && (expected == 0 || mass < p * total); ++expected) {
      mass += probabilities[order[expected]];
    }
    std::vector<float> copy = logits;
    const std::vector<Candidate> kept = Sampler({.temperature = 1.0f, .top_p = p}).Distribution(copy, {});
    EXPECT_EQ(kept.size(), expected) << "top-p " << p;
    double kept_mass = 0;
    for (const Candidate& c : kept) kept_mass += probabilities[c.id] / total;
    EXPECT_GE(kept_mass, p - 1e-6);
    EXPECT_LT(kept_mass - probabilities[kept.back().id] / total, p);  // minimal: one fewer falls short
  }
}

TEST(Sampler, MinPDropsTokensBelowTheThreshold) {
  // Probabilities 0.5, 0.3, 0.15, 0.05; min-p 0.25 keeps p >= 0.125: ids 0, 1, 2.
  const std::vector<float> logits = LogitsFor({0.5, 0.3, 0.15, 0.05});
  std::vector<float> copy = logits;
  const std::vector<Candidate> kept = Sampler({.temperature = 1.0f, .min_p = 0.25f}).Distribution(copy, {});
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_NEAR(kept[2].probability, 0.15 / 0.95, 1e-6);
  const auto counts = Draw({.temperature = 1.0f, .min_p = 0.25f, .seed = 5}, logits, 30000);
  EXPECT_EQ(counts.count(3), 0u);
  EXPECT_NEAR(counts.at(0), 30000 * 0.5 / 0.95, 450);  // sigma ~ 86
}

TEST(Sampler, LowerTemperatureConcentratesOnTheBestToken) {
  const std::vector<float> logits = RandomLogits(200, 6);
  const int32_t best = ArgMax(logits);
  int previous = 0;
  for (float temperature : {4.0f, 1.5f, 0.7f, 0.3f, 0.05f}) {
    const auto counts = Draw({.temperature = temperature, .seed = 9}, logits, 10000);
    const int hits = counts.count(best) ? counts.at(best) : 0;
    EXPECT_GT(hits, previous) << "temperature " << temperature;
    previous = hits;
  }
  EXPECT_GT(previous, 9500);  // at 0.05 nearly always the argmax
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  // Chi-square over 6 categories (5 degrees of freedom): the 99.9% quantile is 20.5.
  const std::vector<double> probabilities = {0.3, 0.25, 0.2, 0.12, 0.08, 0.05};
  const int draws = 50000;
  const auto counts = Draw({.temperature = 1.0f, .seed = 12}, LogitsFor(probabilities), draws);
  double chi_square = 0;
  for (size_t i = 0; i < probabilities.size(); ++i) {
    const double expected = draws * probabilities[i];
    const double observed = counts.count(static_cast<int32_t>(i)) ? counts.at(static_cast<int32_t>(i)) : 0;
    chi_square += (observed - expected) * (observed - expected) / expected;
  }
  EXPECT_LT(chi_square, 20.5);
}

TEST(Logprobs, TopLogprobsAreTheLogSoftmaxMostLikelyFirst) {
  const std::vector<float> logits = LogitsFor({0.1, 0.6, 0.3});
  const std::vector<TokenLogprob> top = TopLogprobs(logits, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].id, 1);
  EXPECT_NEAR(top[0].logprob, std::log(0.6), 1e-6);
  EXPECT_EQ(top[1].id, 2);
  EXPECT_NEAR(Logprob(logits, 0), std::log(0.1), 1e-6);
}

TEST(StopStrings, MatchAcrossPiecesAndHoldBackOnlyPossibleStarts) {
  StopStringMatcher stops({"18 w3", "###"});
  EXPECT_EQ(stops.Push(" w3"), " w3");  // "3" is no start of a stop string
  EXPECT_EQ(stops.Push("1"), "");       // "1" may begin "18 w3"
  EXPECT_EQ(stops.Push("8"), "");       // "18"
  EXPECT_EQ(stops.Push(" w"), "");      // "18 w"
  EXPECT_FALSE(stops.stopped());
  EXPECT_EQ(stops.Push("311"), "");     // "18 w3" completes: nothing of it is released
  EXPECT_TRUE(stops.stopped());
  EXPECT_EQ(stops.matched(), "18 w3");
  EXPECT_EQ(stops.Push("more"), "");
  EXPECT_EQ(stops.Flush(), "");
}

TEST(StopStrings, FalseStartsAreReleasedAndTheEarliestMatchWins) {
  StopStringMatcher stops({"abc", "bcd"});
  EXPECT_EQ(stops.Push("xab"), "x");
  EXPECT_EQ(stops.Push("x"), "abx");  // "abx" can no longer become a stop string
  EXPECT_EQ(stops.Push("abcd"), "");  // "abc" starts first
  EXPECT_EQ(stops.matched(), "abc");
  StopStringMatcher tail({"END"});
  EXPECT_EQ(tail.Push("the EN"), "the ");
  EXPECT_EQ(tail.Flush(), "EN");  // never completed: released at the end
  StopStringMatcher none({""});
  EXPECT_EQ(none.Push("text"), "text");
  // A stop string inside one piece: the text before it is released.
  StopStringMatcher inside({"\n\n"});
  EXPECT_EQ(inside.Push("a\n\nb"), "a");
  EXPECT_TRUE(inside.stopped());
}

}  // namespace
}  // namespace kiln
