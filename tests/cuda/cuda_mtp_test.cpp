// Gemma 4 MTP assistants on the CUDA backend (engine/mtp_draft.h): the drafter step against the
// CPU's (target hidden states, draft logits and post-projection states within 1e-4 in f32,
// argmax drawn on the device), and greedy speculative generation equal to plain decoding, alone
// and batched through the scheduler. Skipped, with the reason, without a usable CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "backends/cuda/cuda_device.h"
#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/mtp_draft.h"
#include "engine/scheduler.h"
#include "io/json_file.h"

namespace kiln {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

struct Case {
  std::string target, assistant;
};
void PrintTo(const Case& c, std::ostream* out) { *out << c.target << " with " << c.assistant; }

class CudaMtpTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    auto device = cuda::ProbeCudaDevice(0);
    if (!device) GTEST_SKIP() << device.error().message();
    const std::string assistant = FixtureDir(GetParam().target) + "/" + GetParam().assistant;
    if (!std::filesystem::exists(assistant + "/config.json")) {
      GTEST_SKIP() << "no assistant in " << assistant << ": scripts/make_mtp_fixtures.py makes it with transformers 5.17";
    }
  }
  static std::unique_ptr<LoadedModel> Load(const std::string& device, int64_t sequences = 1) {
    LoadOptions options;
    options.device = device;
    options.max_tokens = 32;  // the whole fixture prompt in one step
    options.max_sequences = sequences;
    options.max_context = 128;
    options.kv_block_size = 4;
    options.kv_cache_dtype = DType::kF32;
    options.num_threads = 2;
    options.assistant = FixtureDir(GetParam().target) + "/" + GetParam().assistant;
    auto model = LoadedModel::Load(FixtureDir(GetParam().target), options);
    EXPECT_TRUE(model.has_value()) << model.error().ToString();
    return model.has_value() ? std::move(*model) : nullptr;
  }
  static std::vector<int32_t> Prompt() {
    auto reference = ReadJsonFile(FixtureDir(GetParam().target) + "/reference.json");
    EXPECT_TRUE(reference.has_value());
    return reference.has_value() ? (*reference)["prompt"].get<std::vector<int32_t>>() : std::vector<int32_t>{};
  }
};

float MaxAbsDiff(std::span<const float> a, std::span<const float> b) {
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

TEST_P(CudaMtpTest, DrafterMatchesCpu) {
  auto cpu = Load("cpu"), gpu = Load("cuda");
  ASSERT_TRUE(cpu && gpu);
  auto cpu_session = cpu->NewSession();
  auto gpu_session = gpu->NewSession();
  ASSERT_TRUE(cpu_session.has_value() && gpu_session.has_value()) << gpu_session.error().ToString();
  const std::vector<int32_t> prompt = Prompt();
  const int64_t V = cpu_session->vocab_size(), H = cpu_session->runner().hidden_size();
  for (const int64_t t : std::vector<int64_t>{4, 13, static_cast<int64_t>(prompt.size()) - 1}) {  // before and past the window of 6
    std::vector<float> cpu_logits(static_cast<size_t>(V)), gpu_logits(static_cast<size_t>(V));
    std::vector<float> cpu_state(static_cast<size_t>(H)), gpu_state(static_cast<size_t>(H)), device_state;
    cpu_session->Reset();
    gpu_session->Reset();
    const auto part = std::span<const int32_t>(prompt.data(), static_cast<size_t>(t));
    const Status cpu_step = cpu_session->StepInto(part, false, cpu_logits, cpu_state);
    ASSERT_TRUE(cpu_step.ok()) << cpu_step.error().ToString();
    const Status gpu_step = gpu_session->StepInto(part, false, gpu_logits, gpu_state);
    ASSERT_TRUE(gpu_step.ok()) << gpu_step.error().ToString();
    EXPECT_LT(MaxAbsDiff(cpu_state, gpu_state), 1e-4f) << "target hidden state at " << t - 1;
    int32_t token = prompt[static_cast<size_t>(t)];
    for (int k = 0; k < 4; ++k) {
      int32_t cpu_draft = -1, gpu_draft = -1, device_draft = -1;
      device_state = gpu_state;
      const Runner::DraftEntry cpu_entry{&cpu_session->sequence(), token}, gpu_entry{&gpu_session->sequence(), token};
      // On the device with its argmax drawn there, then with the logits brought back.
      for (const Status& drafted : {gpu_session->runner().Draft(std::span(&gpu_entry, 1), device_state, std::span(&device_draft, 1)),
                                    gpu_session->runner().Draft(std::span(&gpu_entry, 1), gpu_state, std::span(&gpu_draft, 1), gpu_logits),
                                    cpu_session->runner().Draft(std::span(&cpu_entry, 1), cpu_state, std::span(&cpu_draft, 1), cpu_logits)}) {
        ASSERT_TRUE(drafted.ok()) << drafted.error().ToString();
      }
      EXPECT_LT(MaxAbsDiff(cpu_logits, gpu_logits), 1e-4f) << "draft logits, t=" << t << " step " << k;
      EXPECT_LT(MaxAbsDiff(cpu_state, gpu_state), 1e-4f) << "post-projection state, t=" << t << " step " << k;
      EXPECT_EQ(MaxAbsDiff(device_state, gpu_state), 0.0f);
      EXPECT_EQ(gpu_draft, cpu_draft);
      EXPECT_EQ(device_draft, cpu_draft);
      token = cpu_draft;
    }
  }
}

TEST_P(CudaMtpTest, GreedySpeculationEqualsPlainDecoding) {
  auto gpu = Load("cuda", 4);
  ASSERT_TRUE(gpu);
  const std::vector<int32_t> prompt = Prompt();
  auto session = gpu->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  GenerateOptions plain;
  plain.max_new_tokens = 40;
  plain.ignore_eos = true;
  auto expected = generator.Generate(prompt, plain);
  ASSERT_TRUE(expected.has_value()) << expected.error().ToString();
  for (int k : {1, 3, 6}) {
    GenerateOptions options = plain;
    options.speculative.type = SpeculativeType::kMtp;
    options.speculative.draft_max = k;
    auto got = generator.Generate(prompt, options);
    ASSERT_TRUE(got.has_value()) << got.error().ToString();
    EXPECT_EQ(got->tokens, expected->tokens) << "k=" << k;
    EXPECT_GT(got->draft_tokens, 0);
  }
  // Four requests through the scheduler (rows drawn on the device when a step has no drafts).
  auto runner = gpu->NewRunner();
  ASSERT_TRUE(runner.has_value()) << runner.error().ToString();
  Scheduler scheduler(**runner, nullptr);
  std::vector<std::optional<Result<GenerationResult>>> results(4);
  for (int i = 0; i < 4; ++i) {
    Request request;
    request.prompt.assign(prompt.begin(), prompt.begin() + 8 + 4 * i);
    request.options = plain;
    request.options.speculative.type = SpeculativeType::kMtp;
    request.options.speculative.draft_max = 1 + i;
    request.on_done = [&results, i](RequestId, Result<GenerationResult> result) { results[static_cast<size_t>(i)] = std::move(result); };
    ASSERT_TRUE(scheduler.Submit(std::move(request)).has_value());
  }
  ASSERT_TRUE(scheduler.RunUntilIdle().ok());
  for (int i = 0; i < 4; ++i) {
    const std::vector<int32_t> part(prompt.begin(), prompt.begin() + 8 + 4 * i);
    auto solo = generator.Generate(part, plain);
    ASSERT_TRUE(solo.has_value());
    ASSERT_TRUE(results[static_cast<size_t>(i)].has_value() && results[static_cast<size_t>(i)]->has_value());
    EXPECT_EQ((*results[static_cast<size_t>(i)])->tokens, solo->tokens) << "request " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaMtpTest,
                         ::testing::Values(Case{"g31b", "mtp_copy"}, Case{"e2b", "mtp_copy"}, Case{"e2b", "mtp_copy_centroid"},
                                           Case{"g31b", "mtp"}, Case{"e2b", "mtp"}, Case{"e2b", "mtp_centroid"}),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.target + "_" + info.param.assistant; });

}  // namespace
}  // namespace kiln
