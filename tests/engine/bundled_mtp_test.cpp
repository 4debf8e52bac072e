// The bundled model's shipped MTP drafter (models/brown-gemma4/mtp, scripts/brown_model/
// train_mtp.py): speculation with it gives exactly the plain output, greedy and seeded, several
// requests at once, and its drafts are those of a trained drafter (a random one gets ~0% accepted;
// its first draft position was accepted 74-87% in kiln_spec_bench), so a missing or untrained drafter
// fails here.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "submit_together.h"

namespace kiln {
namespace {

const std::string kDrafter = std::string(KILN_BUNDLED_MODEL_DIR) + "/mtp";

TEST(BundledMtpDrafter, IsLosslessAndMostlyAccepted) {
  ASSERT_TRUE(std::filesystem::exists(kDrafter + "/config.json")) << kDrafter << " is not shipped";
  ModelOptions options;
  options.context = 512;
  options.chunk = 64;
  options.parallel = 3;
  options.threads = 2;
  auto plain = Model::Load(KILN_BUNDLED_MODEL_DIR, options);
  ASSERT_TRUE(plain.has_value()) << plain.error().ToString();
  options.speculative = "mtp";
  options.draft_model = kDrafter;
  options.draft_max = 3;
  auto speculative = Model::Load(KILN_BUNDLED_MODEL_DIR, options);
  ASSERT_TRUE(speculative.has_value()) << speculative.error().ToString();
  const std::vector<std::string> prompts = {"The jury said that the city", "In the spring the farmers of the county",
                                            "He walked to the window and"};
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest request;
    request.prompt = prompts[i];
    request.max_tokens = 48;
    request.ignore_eos = true;
    SamplingParams sampling;  // greedy
    if (i == 1) {
      sampling.temperature = 0.8f;
      sampling.seed = 7;
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
  const std::vector<Completion> got = SubmitTogether(**speculative, requests);  // they speculate in the same steps
  int64_t drafted = 0, accepted = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(got[i].tokens, expected[i].tokens) << prompts[i];
    drafted += got[i].draft_tokens;
    accepted += got[i].accepted_draft_tokens;
  }
  EXPECT_GT(drafted, 0);
  EXPECT_GT(static_cast<double>(accepted), 0.25 * static_cast<double>(drafted)) << accepted << " of " << drafted << " drafts accepted";
}

}  // namespace
}  // namespace kiln
