// Batched steps on the CUDA backend against solo runs on the CPU backend, on every fixture
// variant (f32 weights, f32 KV cache): sequences of different lengths with prompts longer than
// the sliding window, prefill chunks and decode tokens in one step, sequences joining later,
// decode-only steps of several sequences (captured as CUDA graphs per batch size and replayed).
// Every logit row of every sequence must equal its solo CPU run's within 1e-4, and its greedy
// tokens must be the same. Skipped, with the reason, on a machine without a usable CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "backends/cuda/cuda_device.h"
#include "engine/model_loader.h"

namespace kiln {
namespace {

constexpr float kTolerance = 1e-4f;
constexpr int64_t kChunk = 8;      // Tmax: tokens per step over all sequences
constexpr int64_t kSequences = 4;  // Smax
constexpr int64_t kContext = 64;
constexpr int64_t kBlockSize = 4;  // small blocks: every sequence spans several, rings wrap mid-block

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

int32_t ArgMax(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

struct Request {
  std::vector<int32_t> prompt;
  int64_t generate = 0;
  int64_t join_step = 0;  // the batched step at which it arrives
};

class CudaBatchTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto device = cuda::ProbeCudaDevice(0);
    if (!device) GTEST_SKIP() << device.error().message();
  }
  static std::unique_ptr<LoadedModel> Load(const std::string& device, int64_t sequences) {
    LoadOptions options;
    options.device = device;
    options.max_tokens = kChunk;
    options.max_sequences = sequences;
    options.max_context = kContext;
    options.kv_block_size = kBlockSize;
    options.kv_cache_dtype = DType::kF32;
    auto model = LoadedModel::Load(FixtureDir(GetParam()), options);
    EXPECT_TRUE(model.has_value()) << model.error().ToString();
    return model.has_value() ? std::move(*model) : nullptr;
  }
};

// Solo on the CPU: the greedy continuation of the prompt, then the logits of every position of
// prompt + continuation.
struct Solo {
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // tokens.size() x vocab
};

Solo RunSolo(LoadedModel& model, const Request& request) {
  Solo solo;
  auto session = model.NewSession();
  EXPECT_TRUE(session.has_value()) << session.error().ToString();
  if (!session.has_value()) return solo;
  solo.tokens = request.prompt;
  auto logits = session->Prefill(request.prompt);
  for (int64_t i = 0; i < request.generate && logits.has_value(); ++i) {
    const int32_t next = ArgMax(*logits);
    solo.tokens.push_back(next);
    if (i + 1 < request.generate) logits = session->Step(std::span<const int32_t>(&next, 1));
  }
  EXPECT_TRUE(logits.has_value());
  session->Reset();
  auto all = session->Prefill(solo.tokens, /*all_positions=*/true);
  EXPECT_TRUE(all.has_value()) << all.error().ToString();
  if (all.has_value()) solo.logits = std::move(*all);
  return solo;
}

TEST_P(CudaBatchTest, MixedBatchesMatchSoloCpuRuns) {
  auto gpu = Load("cuda", kSequences);
  auto cpu = Load("cpu", 1);
  ASSERT_NE(gpu, nullptr);
  ASSERT_NE(cpu, nullptr);
  auto runner = gpu->NewRunner();
  ASSERT_TRUE(runner.has_value()) << runner.error().ToString();
  const int64_t vocab = (*runner)->vocab_size();
  // Prompts past every variant's window (6-8), of different lengths; two sequences arrive later,
  // while the first ones decode.
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab) - 1);
  auto prompt = [&](int64_t length) {
    std::vector<int32_t> ids(static_cast<size_t>(length));
    for (int32_t& id : ids) id = token(rng);
    return ids;
  };
  const std::vector<Request> requests = {{prompt(19), 9, 0}, {prompt(11), 12, 0}, {prompt(26), 6, 3}, {prompt(13), 10, 6}};
  std::vector<Solo> solo;
  for (const Request& request : requests) solo.push_back(RunSolo(*cpu, request));

  struct Live {
    std::unique_ptr<Sequence> sequence;
    size_t fed = 0;  // tokens of solo[i].tokens run so far
    size_t end = 0;  // prompt + generate - 1: the last generated token is never fed
    bool done = false;
  };
  std::vector<Live> live(requests.size());
  float worst = 0.0f;
  int64_t mismatched_tokens = 0, rows_checked = 0, mixed_steps = 0, decode_steps = 0;
  for (int64_t step = 0; step < 200; ++step) {
    std::vector<BatchEntry> batch;
    std::vector<size_t> owner;
    int64_t budget = kChunk;
    bool any_prefill = false, any_decode = false;
    // Decoding sequences first, one token each; then prompt chunks in the room left.
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t i = 0; i < requests.size(); ++i) {
        Live& l = live[i];
        if (step < requests[i].join_step || l.done || budget == 0) continue;
        if (!l.sequence) {
          l.sequence = std::make_unique<Sequence>((*runner)->pool());
          l.end = requests[i].prompt.size() + static_cast<size_t>(requests[i].generate) - 1;
        }
        const bool decoding = l.fed >= requests[i].prompt.size();
        if (decoding != (pass == 0)) continue;
        const size_t count = decoding ? 1 : std::min<size_t>(static_cast<size_t>(budget), requests[i].prompt.size() - l.fed);
        // Teacher forcing with the solo tokens keeps the rows comparable even if an argmax differs.
        batch.push_back({l.sequence.get(), std::span<const int32_t>(solo[i].tokens.data() + l.fed, count), false});
        owner.push_back(i);
        budget -= static_cast<int64_t>(count);
        (decoding ? any_decode : any_prefill) = true;
      }
    }
    if (batch.empty()) break;
    mixed_steps += any_decode && any_prefill;
    decode_steps += any_decode && !any_prefill && batch.size() > 1;
    std::vector<float> logits(static_cast<size_t>(Runner::LogitRows(batch) * vocab));
    const Status status = (*runner)->Run(batch, logits);
    ASSERT_TRUE(status.ok()) << status.ToString();
    for (size_t e = 0; e < batch.size(); ++e) {
      const size_t i = owner[e];
      Live& l = live[i];
      l.fed += batch[e].tokens.size();
      const std::span<const float> row(logits.data() + e * static_cast<size_t>(vocab), static_cast<size_t>(vocab));
      const float* expected = solo[i].logits.data() + (l.fed - 1) * static_cast<size_t>(vocab);
      for (int64_t v = 0; v < vocab; ++v) worst = std::max(worst, std::abs(row[static_cast<size_t>(v)] - expected[v]));
      ++rows_checked;
      // Rows from the end of the prompt on choose the next token.
      if (l.fed >= requests[i].prompt.size() && l.fed < solo[i].tokens.size()) {
        mismatched_tokens += ArgMax(row) != solo[i].tokens[l.fed];
      }
      // A finished sequence leaves: its blocks go back to the pool for the ones still running.
      if (l.fed == l.end) {
        l.done = true;
        l.sequence.reset();
      }
    }
  }
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_TRUE(live[i].done) << "request " << i << " did not finish";
  EXPECT_TRUE((*runner)->pool().AllFree());
  std::printf("[ batch    ] %s: %lld rows, %lld mixed steps, %lld multi-sequence decode steps, max |gpu - cpu| %.3g\n",
              GetParam().c_str(), static_cast<long long>(rows_checked), static_cast<long long>(mixed_steps),
              static_cast<long long>(decode_steps), worst);
  EXPECT_GT(mixed_steps, 0);
  EXPECT_GT(decode_steps, 0);
  EXPECT_LT(worst, kTolerance);
  EXPECT_EQ(mismatched_tokens, 0) << "greedy tokens differ from the solo CPU run";
}

INSTANTIATE_TEST_SUITE_P(Variants, CudaBatchTest, ::testing::Values("e2b", "e4b", "g12b", "a26b", "g31b"));

}  // namespace
}  // namespace kiln
