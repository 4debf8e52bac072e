// Speculative sampling keeps the model's distribution (docs/speculative.md, "Why it is lossless"):
// at temperature 1, the token decided by a verify round's acceptance rule is distributed as
// plain sampling's. The bundled model drafts for itself (its greedy tokens, accepted as often as
// its own sampling agrees with them); a two-sample chi-square over many seeds compares the third
// generated token of speculative runs with plain runs of other seeds. To show the statistic has
// power, the same test on what an always-accept rule would have produced must fail.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "engine/draft_model.h"
#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/speculative.h"

namespace kiln {
namespace {

// Two samples of equal size: sum over categories of (a - b)^2 / (a + b), categories with fewer
// than 10 draws in both together pooled into one. Returns {statistic, degrees of freedom}.
std::pair<double, int> TwoSampleChiSquare(const std::map<int32_t, int>& a, const std::map<int32_t, int>& b) {
  std::map<int32_t, std::pair<int, int>> joint;
  for (const auto& [token, count] : a) joint[token].first += count;
  for (const auto& [token, count] : b) joint[token].second += count;
  double statistic = 0;
  int categories = 0, pooled_a = 0, pooled_b = 0;
  for (const auto& [token, counts] : joint) {
    if (counts.first + counts.second < 10) {
      pooled_a += counts.first;
      pooled_b += counts.second;
      continue;
    }
    const double d = counts.first - counts.second;
    statistic += d * d / (counts.first + counts.second);
    ++categories;
  }
  if (pooled_a + pooled_b > 0) {
    const double d = pooled_a - pooled_b;
    statistic += d * d / (pooled_a + pooled_b);
    ++categories;
  }
  return {statistic, categories - 1};
}

// The chi-square distribution's 99.9% quantile (Wilson-Hilferty).
double Quantile999(int degrees) {
  const double k = degrees, z = 3.0902;
  return k * std::pow(1.0 - 2.0 / (9.0 * k) + z * std::sqrt(2.0 / (9.0 * k)), 3.0);
}

TEST(SpeculativeDistribution, TheVerifiedTokenFollowsPlainSampling) {
  LoadOptions load;
  load.max_context = 128;
  load.max_tokens = 32;
  load.num_threads = 1;  // thousands of short runs: a second worker only waits (and starves beside other tests)
  auto model = LoadedModel::Load(KILN_BUNDLED_MODEL_DIR, load);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  auto session = (*model)->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  // "The committee said that the new plan would be" in the bundled model's tokens.
  const std::vector<int32_t> prompt = {2, 565, 4350, 638, 414, 349, 756, 1087, 579, 391};
  auto draft = LoadedModel::Load(KILN_BUNDLED_MODEL_DIR, load);
  ASSERT_TRUE(draft.has_value());
  auto drafter = ModelDrafter::Create(std::move(*draft), (*model)->architecture().vocab_size());
  ASSERT_TRUE(drafter.has_value()) << drafter.error().ToString();

  GenerateOptions plain;
  plain.max_new_tokens = 3;
  plain.ignore_eos = true;
  plain.sampling.temperature = 1.0f;
  plain.sampling.top_k = 0;
  plain.sampling.top_p = 1.0f;
  GenerateOptions speculative = plain;
  speculative.speculative.type = SpeculativeType::kDraft;
  speculative.speculative.drafter = drafter->get();
  speculative.speculative.draft_max = 4;
  speculative.speculative.adaptive = false;

  constexpr int kSeeds = 500;
  std::map<int32_t, int> plain_third, speculative_third, always_accept_third;
  int64_t accepted = 0;
  for (int seed = 0; seed < kSeeds; ++seed) {
    plain.sampling.seed = static_cast<uint64_t>(kSeeds + seed);  // other seeds: independent samples
    speculative.sampling.seed = static_cast<uint64_t>(seed);
    auto a = generator.Generate(prompt, plain);
    auto b = generator.Generate(prompt, speculative);
    ASSERT_TRUE(a.has_value() && b.has_value());
    ASSERT_EQ(a->tokens.size(), 3u);
    ASSERT_EQ(b->tokens.size(), 3u);
    ++plain_third[a->tokens[2]];
    ++speculative_third[b->tokens[2]];
    accepted += b->accepted_draft_tokens;
    // A wrong rule that keeps every draft: the third token would be the round's second draft.
    std::vector<int32_t> history = prompt, drafts;
    history.push_back(b->tokens[0]);
    auto drafted = (*drafter)->Draft(history, 2, drafts);
    ASSERT_TRUE(drafted.has_value() && *drafted == 2);
    ++always_accept_third[drafts[1]];
  }
  EXPECT_GT(accepted, kSeeds / 5);  // the rule was exercised: drafts were accepted, and rejected
  EXPECT_LT(accepted, 3 * kSeeds);
  const auto [statistic, degrees] = TwoSampleChiSquare(plain_third, speculative_third);
  ASSERT_GT(degrees, 2);
  EXPECT_LT(statistic, Quantile999(degrees)) << "speculative sampling changed the distribution (" << degrees << " degrees of freedom)";
  const auto [wrong, wrong_degrees] = TwoSampleChiSquare(plain_third, always_accept_third);
  EXPECT_GT(wrong, Quantile999(wrong_degrees)) << "the test cannot tell an always-accept rule from the right one";
  std::printf("[ chi-square ] speculative vs plain %.1f (%d df, 99.9%% quantile %.1f); always-accept vs plain %.1f (%d df); %lld accepted\n",
              statistic, degrees, Quantile999(degrees), wrong, wrong_degrees, static_cast<long long>(accepted));
}

}  // namespace
}  // namespace kiln
