// Pipelined decode on the CUDA backend: tokens sampled on the device feed the next step there,
// several steps in flight. Greedy continuations equal transformers'; a stop discards the steps
// run past it and leaves the cache exactly as if decoding had stopped there; seeded sampling
// does not depend on the depth. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <regex>

#include "backends/cuda/cuda_device.h"
#include "engine/generator.h"
#include "engine/model_loader.h"
#include "io/json_file.h"
#include "../engine/synthetic_constraint.h"

namespace kiln {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

class CudaDecodeTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto device = cuda::ProbeCudaDevice(0);
    if (!device) GTEST_SKIP() << device.error().message();
    auto reference = ReadJsonFile(FixtureDir(GetParam()) + "/reference.json");
    ASSERT_TRUE(reference.has_value());
    prompt_ = (*reference)["prompt"].get<std::vector<int32_t>>();
    greedy_ = (*reference)["greedy_tokens"].get<std::vector<int32_t>>();
  }
  std::unique_ptr<LoadedModel> Load(const std::string& device) {
    LoadOptions options;
    options.device = device;
    options.max_tokens = 8;
    options.max_context = 64;
    auto model = LoadedModel::Load(FixtureDir(GetParam()), options);
    EXPECT_TRUE(model.has_value()) << model.error().ToString();
    return model.has_value() ? std::move(*model) : nullptr;
  }
  std::vector<int32_t> prompt_, greedy_;
};

TEST_P(CudaDecodeTest, GreedyOnTheDeviceEqualsTransformersAtEveryDepth) {
  auto model = Load("cuda");
  ASSERT_NE(model, nullptr);
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  ASSERT_TRUE(session->SupportsDecodeOnDevice());
  Generator generator(*session, nullptr);
  for (int depth : {1, 2, 4, 8}) {
    GenerateOptions options;
    options.max_new_tokens = static_cast<int64_t>(greedy_.size());
    options.ignore_eos = true;
    options.decode_depth = depth;
    generator.Reset();
    auto result = generator.Generate(prompt_, options);
    ASSERT_TRUE(result.has_value()) << result.error().ToString();
    EXPECT_EQ(result->tokens, greedy_) << "depth " << depth;
    EXPECT_EQ(result->decode_steps, static_cast<int64_t>(greedy_.size()) - 1);
    // The cache holds the prompt and every generated token but the last.
    EXPECT_EQ(session->length(), static_cast<int64_t>(prompt_.size() + greedy_.size() - 1)) << "depth " << depth;
  }
}

TEST_P(CudaDecodeTest, StopDiscardsTheStepsInFlightAndRollsTheCacheBack) {
  auto gpu = Load("cuda"), cpu = Load("cpu");
  ASSERT_NE(gpu, nullptr);
  ASSERT_NE(cpu, nullptr);
  auto session = gpu->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  GenerateOptions options;
  options.max_new_tokens = 20;
  options.decode_depth = 8;
  options.stop_token_ids = {greedy_[3]};  // the 4th greedy token ends generation
  const int64_t stop_index = std::find(greedy_.begin(), greedy_.end(), greedy_[3]) - greedy_.begin();
  auto result = generator.Generate(prompt_, options);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->stop_reason, StopReason::kEos);
  EXPECT_EQ(result->tokens, std::vector<int32_t>(greedy_.begin(), greedy_.begin() + stop_index + 1));
  // Up to 8 steps ran past the stop; none of them counts.
  EXPECT_EQ(session->length(), static_cast<int64_t>(prompt_.size()) + stop_index);
  // The next step continues from exactly there: its logits equal the CPU's for the same sequence.
  std::vector<int32_t> sequence = prompt_;
  sequence.insert(sequence.end(), greedy_.begin(), greedy_.begin() + stop_index);
  auto reference = cpu->NewSession();
  ASSERT_TRUE(reference.has_value());
  ASSERT_TRUE(reference->Prefill(sequence).has_value());
  const int32_t next = greedy_[static_cast<size_t>(stop_index)];
  auto expected = reference->Step({&next, 1});
  auto actual = session->Step({&next, 1});
  ASSERT_TRUE(expected.has_value() && actual.has_value());
  float worst = 0.0f;
  for (size_t i = 0; i < expected->size(); ++i) worst = std::max(worst, std::abs((*expected)[i] - (*actual)[i]));
  EXPECT_LT(worst, 5e-4f);
}

TEST_P(CudaDecodeTest, SeededSamplingDoesNotDependOnTheDepth) {
  auto model = Load("cuda");
  ASSERT_NE(model, nullptr);
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  std::vector<std::vector<int32_t>> runs;
  for (int depth : {1, 3, 8, 8}) {
    GenerateOptions options;
    options.max_new_tokens = 16;
    options.ignore_eos = true;
    options.decode_depth = depth;
    options.sampling.temperature = 1.5f;
    options.sampling.top_k = 40;
    options.sampling.top_p = 0.9f;
    options.sampling.seed = 1234;
    generator.Reset();
    auto result = generator.Generate(prompt_, options);
    ASSERT_TRUE(result.has_value()) << result.error().ToString();
    ASSERT_EQ(result->tokens.size(), 16u);
    runs.push_back(result->tokens);
  }
  for (size_t i = 1; i < runs.size(); ++i) EXPECT_EQ(runs[i], runs[0]);
  // Another seed draws another sequence (16 tokens at temperature 1.5 practically never repeat).
  GenerateOptions other;
  other.max_new_tokens = 16;
  other.ignore_eos = true;
  other.sampling.temperature = 1.5f;
  other.sampling.top_k = 40;
  other.sampling.top_p = 0.9f;
  other.sampling.seed = 99;
  generator.Reset();
  auto result = generator.Generate(prompt_, other);
  ASSERT_TRUE(result.has_value());
  EXPECT_NE(result->tokens, runs[0]);
}

TEST_P(CudaDecodeTest, ContextFullEndsTheDeviceDecode) {
  LoadOptions options;
  options.device = "cuda";
  options.max_tokens = 8;
  options.max_context = static_cast<int64_t>(prompt_.size()) + 5;
  auto model = LoadedModel::Load(FixtureDir(GetParam()), options);
  ASSERT_TRUE(model.has_value());
  auto session = (*model)->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  GenerateOptions generate;
  generate.max_new_tokens = 50;
  generate.ignore_eos = true;
  auto result = generator.Generate(prompt_, generate);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->stop_reason, StopReason::kContextFull);
  EXPECT_EQ(result->tokens.size(), 6u);  // 5 steps fit after the prompt, plus the token the last one sampled
  EXPECT_EQ(session->length(), options.max_context);
}

// Structured output on the device: each draw masked on the GPU, the mask of step k+1 computed
// while step k+1 runs. Greedy tokens equal the host-sampled constrained run on the same GPU, the
// text matches the regex, and seeded sampling stays inside the grammar at every depth.
TEST_P(CudaDecodeTest, AConstraintMasksEachDrawOnTheDevice) {
  auto model = Load("cuda");
  ASSERT_NE(model, nullptr);
  const std::string pattern = "(ab|ba)[01]{3,9}x?y{1,2}";
  const ConstraintSpec constraint = testing::SyntheticRegexConstraint(model->architecture().vocab_size(), pattern);
  ASSERT_TRUE(constraint);
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  auto generate = [&](int depth, float temperature, uint64_t seed) {
    GenerateOptions options;
    options.max_new_tokens = 24;
    options.decode_depth = depth;
    options.constraint = constraint;
    options.sampling.temperature = temperature;
    options.sampling.seed = seed;
    generator.Reset();
    return generator.Generate(prompt_, options);
  };
  auto text_of = [](const std::vector<int32_t>& tokens) {
    std::string text;
    for (int32_t id : tokens) {
      if (id != 1) text += testing::SyntheticTokenText(id);
    }
    return text;
  };
  auto on_host = generate(0, 0.0f, 0);
  ASSERT_TRUE(on_host.has_value()) << on_host.error().ToString();
  for (int depth : {1, 4}) {
    auto on_device = generate(depth, 0.0f, 0);
    ASSERT_TRUE(on_device.has_value()) << on_device.error().ToString();
    EXPECT_EQ(on_device->tokens, on_host->tokens) << "depth " << depth;
    EXPECT_EQ(on_device->stop_reason, StopReason::kEos);
    EXPECT_TRUE(std::regex_match(text_of(on_device->tokens), std::regex(pattern))) << text_of(on_device->tokens);
    EXPECT_EQ(session->length(), static_cast<int64_t>(prompt_.size() + on_device->tokens.size()) - 1);
  }
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    auto sampled = generate(4, 1.5f, seed);
    ASSERT_TRUE(sampled.has_value()) << sampled.error().ToString();
    EXPECT_EQ(sampled->stop_reason, StopReason::kEos) << "seed " << seed;
    EXPECT_TRUE(std::regex_match(text_of(sampled->tokens), std::regex(pattern))) << "seed " << seed << ": " << text_of(sampled->tokens);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, CudaDecodeTest, ::testing::Values("e2b", "g31b"));

}  // namespace
}  // namespace kiln
