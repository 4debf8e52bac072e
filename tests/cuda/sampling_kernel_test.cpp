// The GPU sampler (sampling.cuh) against the host oracles: greedy against kiln::ArgMax, the
// logprob against kiln::Logprob, and sampled tokens against Sampler::Distribution (every token
// in the candidate set, frequencies by a chi-square test over thousands of draws). Also the
// counter contract (determinism, one step per call) and replay inside a CUDA graph, and prints
// the kernel's time at Gemma 4's vocabulary. Skipped, with the reason, without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "backends/cuda/cuda_device.h"
#include "backends/cuda/kernels/sampling.cuh"
#include "engine/sampler.h"

namespace kiln {
namespace {

using cuda::DeviceSampling;
using cuda::LaunchSample;

constexpr int64_t kGemma4Vocab = 262144;

// Raw device memory for a test's lifetime.
class DeviceMemory {
 public:
  explicit DeviceMemory(size_t bytes) { EXPECT_EQ(cudaMalloc(&data_, bytes), cudaSuccess); }
  ~DeviceMemory() { cudaFree(data_); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
};

std::vector<float> NormalLogits(int64_t vocab, float stddev, uint32_t seed) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (float& logit : logits) logit = normal(engine);
  return logits;
}

SamplingOptions HostOptions(const DeviceSampling& params) {
  return {.temperature = params.temperature, .top_k = params.top_k, .top_p = params.top_p, .min_p = params.min_p};
}

class SamplingKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto device = cuda::ProbeCudaDevice(0);
    if (!device) GTEST_SKIP() << device.error().message();
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
    scratch_ = std::make_unique<DeviceMemory>(static_cast<size_t>(cuda::SampleScratchBytes(kGemma4Vocab)));
    counter_ = std::make_unique<DeviceMemory>(sizeof(uint64_t));
    position_ = std::make_unique<DeviceMemory>(sizeof(int32_t));
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  void Upload(const std::vector<float>& logits) {
    vocab_ = static_cast<int64_t>(logits.size());
    logits_ = std::make_unique<DeviceMemory>(logits.size() * sizeof(float));
    ASSERT_EQ(cudaMemcpy(logits_->as<float>(), logits.data(), logits.size() * sizeof(float), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  void SetCounter(uint64_t value) {
    ASSERT_EQ(cudaMemcpy(counter_->as<uint64_t>(), &value, sizeof(value), cudaMemcpyHostToDevice), cudaSuccess);
  }
  uint64_t Counter() const {
    uint64_t value = 0;
    EXPECT_EQ(cudaMemcpy(&value, counter_->as<uint64_t>(), sizeof(value), cudaMemcpyDeviceToHost), cudaSuccess);
    return value;
  }
  cudaError_t Launch(const DeviceSampling& params, int32_t* token, float* logprob, int32_t* position) {
    return LaunchSample(logits_->as<float>(), vocab_, params, counter_->as<uint64_t>(), token, logprob, position,
                        scratch_->as<void>(), stream_);
  }

  // `draws` calls back to back from counter `first`, each writing its own slot.
  std::vector<int32_t> Draw(const DeviceSampling& params, uint64_t first, int64_t draws,
                            std::vector<float>* logprobs = nullptr) {
    SetCounter(first);
    DeviceMemory tokens(static_cast<size_t>(draws) * sizeof(int32_t));
    DeviceMemory values(static_cast<size_t>(draws) * sizeof(float));
    cudaError_t error = cudaSuccess;
    for (int64_t i = 0; i < draws && error == cudaSuccess; ++i) {
      error = Launch(params, tokens.as<int32_t>() + i, values.as<float>() + i, nullptr);
    }
    EXPECT_EQ(error, cudaSuccess) << cudaGetErrorString(error);
    EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    std::vector<int32_t> result(static_cast<size_t>(draws));
    EXPECT_EQ(cudaMemcpy(result.data(), tokens.as<int32_t>(), result.size() * sizeof(int32_t), cudaMemcpyDeviceToHost),
              cudaSuccess);
    if (logprobs != nullptr) {
      logprobs->resize(static_cast<size_t>(draws));
      EXPECT_EQ(cudaMemcpy(logprobs->data(), values.as<float>(), logprobs->size() * sizeof(float),
                           cudaMemcpyDeviceToHost),
                cudaSuccess);
    }
    return result;
  }

  cudaStream_t stream_ = nullptr;
  int64_t vocab_ = 0;
  std::unique_ptr<DeviceMemory> logits_, scratch_, counter_, position_;
};

// Pearson's statistic of observed token counts against the host distribution. Candidates, most
// likely first, are pooled into groups of expected count >= 10 so the chi-square approximation
// holds. Any draw outside the candidate set fails on its own.
struct ChiSquare {
  double statistic = 0.0;
  int64_t degrees = 0;
  int64_t outside = 0;  // draws of ids that are not candidates
  // The statistic's mean is `degrees`, its spread sqrt(2 degrees); this bound is passed by a
  // correct sampler with probability below 1e-4 for any degrees.
  double Bound() const { return static_cast<double>(degrees) + 6.0 * std::sqrt(2.0 * degrees) + 6.0; }
};

ChiSquare ChiSquareAgainst(const std::vector<Candidate>& candidates, const std::vector<int32_t>& tokens) {
  std::map<int32_t, int64_t> counts;
  for (int32_t token : tokens) ++counts[token];
  ChiSquare result;
  int64_t in_set = 0;
  for (const Candidate& candidate : candidates) in_set += counts.count(candidate.id) ? counts[candidate.id] : 0;
  result.outside = static_cast<int64_t>(tokens.size()) - in_set;
  const double draws = static_cast<double>(tokens.size());
  double expected = 0.0, observed = 0.0;
  int64_t groups = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    expected += candidates[i].probability * draws;
    observed += counts.count(candidates[i].id) ? static_cast<double>(counts[candidates[i].id]) : 0.0;
    // Close a group at >= 10 expected unless what remains would be a group below that.
    double rest = 0.0;
    for (size_t j = i + 1; j < candidates.size() && rest < 10.0; ++j) rest += candidates[j].probability * draws;
    if (i + 1 == candidates.size() || (expected >= 10.0 && rest >= 10.0)) {
      result.statistic += (observed - expected) * (observed - expected) / expected;
      ++groups;
      expected = observed = 0.0;
    }
  }
  result.degrees = std::max<int64_t>(groups - 1, 1);
  return result;
}

TEST_F(SamplingKernelTest, GreedyIsArgMaxAndLogprobIsLogprob) {
  for (int64_t vocab : {int64_t{1}, int64_t{7}, int64_t{1000}, int64_t{4097}, kGemma4Vocab}) {
    SCOPED_TRACE(vocab);
    const std::vector<float> logits = NormalLogits(vocab, /*stddev=*/4.0f, /*seed=*/static_cast<uint32_t>(vocab));
    Upload(logits);
    std::vector<float> logprobs;
    const std::vector<int32_t> tokens = Draw(DeviceSampling{}, /*first=*/0, /*draws=*/3, &logprobs);
    for (size_t i = 0; i < tokens.size(); ++i) {
      EXPECT_EQ(tokens[i], ArgMax(logits));
      EXPECT_NEAR(logprobs[i], Logprob(logits, tokens[i]), 1e-5f);
    }
  }
}

TEST_F(SamplingKernelTest, GreedyTiesGoToTheLowestId) {
  // Three ids share the maximum, in different blocks of the grid: 100 wins.
  std::vector<float> logits = NormalLogits(kGemma4Vocab, /*stddev=*/1.0f, /*seed=*/3);
  for (int32_t id : {200000, 100, 5000}) logits[id] = 20.0f;
  logits[7] = -std::numeric_limits<float>::infinity();
  Upload(logits);
  std::vector<float> logprobs;
  EXPECT_EQ(Draw(DeviceSampling{}, 0, 1, &logprobs)[0], 100);
  EXPECT_NEAR(logprobs[0], Logprob(logits, 100), 1e-5f);
  // All equal: id 0.
  Upload(std::vector<float>(7, 1.5f));
  EXPECT_EQ(Draw(DeviceSampling{}, 0, 1, &logprobs)[0], 0);
  EXPECT_NEAR(logprobs[0], -std::log(7.0f), 1e-5f);
}

TEST_F(SamplingKernelTest, TopKOneIsGreedyAtAnyTemperature) {
  for (int64_t vocab : {int64_t{1000}, kGemma4Vocab}) {
    const std::vector<float> logits = NormalLogits(vocab, /*stddev=*/2.0f, /*seed=*/11);
    Upload(logits);
    for (float temperature : {0.3f, 1.0f, 2.5f}) {
      SCOPED_TRACE(testing::Message() << "vocab " << vocab << " temperature " << temperature);
      std::vector<float> logprobs;
      const std::vector<int32_t> tokens =
          Draw({.temperature = temperature, .top_k = 1, .top_p = 0.9f, .seed = 5}, /*first=*/0, /*draws=*/50, &logprobs);
      for (size_t i = 0; i < tokens.size(); ++i) {
        ASSERT_EQ(tokens[i], ArgMax(logits));
        EXPECT_NEAR(logprobs[i], Logprob(logits, tokens[i]), 1e-5f);
      }
    }
  }
}

struct DistributionCase {
  int64_t vocab;
  float stddev;
  DeviceSampling params;
  int64_t draws;
};

void PrintTo(const DistributionCase& c, std::ostream* os) {
  *os << "vocab=" << c.vocab << " T=" << c.params.temperature << " top_k=" << c.params.top_k
      << " top_p=" << c.params.top_p << " min_p=" << c.params.min_p;
}

class SamplingDistributionTest : public SamplingKernelTest, public ::testing::WithParamInterface<DistributionCase> {};

TEST_P(SamplingDistributionTest, DrawsFollowTheHostDistribution) {
  const DistributionCase& c = GetParam();
  std::vector<float> logits = NormalLogits(c.vocab, c.stddev, /*seed=*/static_cast<uint32_t>(c.vocab + c.params.top_k));
  Upload(logits);
  Sampler host(HostOptions(c.params));
  const std::vector<Candidate> candidates = host.Distribution(logits, /*history=*/{});
  std::vector<float> logprobs;
  const std::vector<int32_t> tokens = Draw(c.params, /*first=*/1000, c.draws, &logprobs);
  const ChiSquare chi = ChiSquareAgainst(candidates, tokens);
  EXPECT_EQ(chi.outside, 0) << "draws outside the host's " << candidates.size() << " candidates";
  EXPECT_LT(chi.statistic, chi.Bound()) << candidates.size() << " candidates, " << chi.degrees << " degrees";
  for (size_t i = 0; i < tokens.size(); i += 97) EXPECT_NEAR(logprobs[i], Logprob(logits, tokens[i]), 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(
    SmallAndGemma4Vocabularies, SamplingDistributionTest,
    ::testing::Values(
        // Small vocabulary, 20000 draws: every filter alone and together.
        DistributionCase{40, 2.0f, {.temperature = 1.0f}, 20000},
        DistributionCase{40, 2.0f, {.temperature = 0.7f, .top_k = 5}, 20000},
        DistributionCase{40, 2.0f, {.temperature = 1.3f, .top_p = 0.8f}, 20000},
        DistributionCase{40, 2.0f, {.temperature = 1.0f, .min_p = 0.1f}, 20000},
        DistributionCase{40, 2.0f, {.temperature = 0.9f, .top_k = 20, .top_p = 0.9f, .min_p = 0.05f}, 20000},
        // Gemma 4's vocabulary: the usual settings, a wide nucleus (thousands of tokens, so the
        // top-p passes see most of the vocabulary) and a large top-k.
        DistributionCase{kGemma4Vocab, 3.0f, {.temperature = 1.0f, .top_k = 64, .top_p = 0.95f}, 4000},
        DistributionCase{kGemma4Vocab, 3.0f, {.temperature = 0.8f, .top_p = 0.5f}, 4000},
        DistributionCase{kGemma4Vocab, 3.0f, {.temperature = 1.0f, .top_k = 1000, .min_p = 0.01f}, 4000},
        DistributionCase{kGemma4Vocab, 3.0f, {.temperature = 0.7f, .min_p = 0.2f}, 4000}));

// The chi-square bound has teeth: draws at temperature 1.3 fail against the distribution at 1.
TEST_F(SamplingKernelTest, ChiSquareRejectsAnotherTemperature) {
  const std::vector<float> logits = NormalLogits(40, /*stddev=*/2.0f, /*seed=*/40);
  Upload(logits);
  std::vector<float> copy = logits;
  const std::vector<Candidate> at_one = Sampler(HostOptions({.temperature = 1.0f})).Distribution(copy, {});
  const ChiSquare chi = ChiSquareAgainst(at_one, Draw({.temperature = 1.3f}, /*first=*/0, /*draws=*/20000));
  EXPECT_GT(chi.statistic, chi.Bound());
}

int64_t Distinct(const std::vector<int32_t>& tokens) {
  return static_cast<int64_t>(std::set<int32_t>(tokens.begin(), tokens.end()).size());
}

TEST_F(SamplingKernelTest, SameSeedAndCounterGiveTheSameTokens) {
  Upload(NormalLogits(kGemma4Vocab, /*stddev=*/3.0f, /*seed=*/7));
  const DeviceSampling params{.temperature = 1.0f, .top_k = 64, .top_p = 0.95f, .seed = 1234};
  const std::vector<int32_t> first = Draw(params, /*first=*/500, /*draws=*/200);
  EXPECT_EQ(Draw(params, /*first=*/500, /*draws=*/200), first);
  // Successive counters draw different numbers: 200 draws over a top-64 nucleus take many ids.
  EXPECT_GT(Distinct(first), 10);
  // Another stretch of counters, or another seed, gives another sequence.
  EXPECT_NE(Draw(params, /*first=*/700, /*draws=*/200), first);
  DeviceSampling other_seed = params;
  other_seed.seed = 1235;
  EXPECT_NE(Draw(other_seed, /*first=*/500, /*draws=*/200), first);
}

TEST_F(SamplingKernelTest, CounterAndPositionAdvanceByOnePerCall) {
  Upload(NormalLogits(1000, /*stddev=*/2.0f, /*seed=*/9));
  SetCounter(41);
  const int32_t start_position = 7;
  ASSERT_EQ(cudaMemcpy(position_->as<int32_t>(), &start_position, sizeof(start_position), cudaMemcpyHostToDevice),
            cudaSuccess);
  DeviceMemory token(sizeof(int32_t));
  // 5 greedy and 5 sampled calls advance both by 10; a call without a position only the counter.
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Launch(DeviceSampling{}, token.as<int32_t>(), nullptr, position_->as<int32_t>()), cudaSuccess);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Launch({.temperature = 1.0f, .top_p = 0.9f}, token.as<int32_t>(), nullptr, position_->as<int32_t>()),
              cudaSuccess);
  }
  ASSERT_EQ(Launch({.temperature = 1.0f}, token.as<int32_t>(), nullptr, nullptr), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  int32_t position = 0;
  ASSERT_EQ(cudaMemcpy(&position, position_->as<int32_t>(), sizeof(position), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(Counter(), 41u + 11u);
  EXPECT_EQ(position, start_position + 10);
}

// Captured once, replayed: each replay draws with the next counter, exactly the tokens the same
// calls give outside a graph.
TEST_F(SamplingKernelTest, ReplaysInACudaGraph) {
  Upload(NormalLogits(kGemma4Vocab, /*stddev=*/3.0f, /*seed=*/21));
  const DeviceSampling params{.temperature = 0.8f, .top_k = 64, .top_p = 0.95f, .min_p = 0.01f, .seed = 99};
  constexpr int kReplays = 100;
  const std::vector<int32_t> expected = Draw(params, /*first=*/3, kReplays);
  SetCounter(3);
  DeviceMemory token(sizeof(int32_t));
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  const cudaError_t launched = Launch(params, token.as<int32_t>(), nullptr, position_->as<int32_t>());
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  ASSERT_EQ(launched, cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  std::vector<int32_t> replayed;
  for (int i = 0; i < kReplays; ++i) {
    ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
    int32_t value = -1;
    ASSERT_EQ(cudaMemcpyAsync(&value, token.as<int32_t>(), sizeof(value), cudaMemcpyDeviceToHost, stream_), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    replayed.push_back(value);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  EXPECT_EQ(replayed, expected);
  EXPECT_GT(Distinct(replayed), 5);
  EXPECT_EQ(Counter(), 3u + kReplays);
}

// Microseconds per call at Gemma 4's vocabulary: back-to-back launches on a stream, and calls
// replayed from one captured graph (how a decode loop runs it).
// The allowed-token mask (structured output): every disallowed logit becomes -inf, allowed ones
// keep their values, and the draws that follow stay inside the allowed set; its time is printed.
TEST_F(SamplingKernelTest, MaskLeavesOnlyTheAllowedIds) {
  for (int64_t vocab : {int64_t{1}, int64_t{70}, int64_t{4097}, kGemma4Vocab}) {
    SCOPED_TRACE(vocab);
    const std::vector<float> logits = NormalLogits(vocab, /*stddev=*/4.0f, /*seed=*/11);
    Upload(logits);
    std::mt19937_64 bits(static_cast<uint64_t>(vocab));
    std::vector<uint64_t> allowed(static_cast<size_t>((vocab + 63) / 64));
    for (uint64_t& word : allowed) word = bits() & bits();  // about a quarter of the ids
    allowed[0] |= 1;  // at least one
    if (vocab > 64) allowed[1] = ~uint64_t{0};  // a whole word
    DeviceMemory mask(allowed.size() * 8);
    ASSERT_EQ(cudaMemcpy(mask.as<uint64_t>(), allowed.data(), allowed.size() * 8, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cuda::LaunchMaskLogits(logits_->as<float>(), vocab, mask.as<uint64_t>(), stream_), cudaSuccess);
    std::vector<float> masked(logits.size());
    ASSERT_EQ(cudaMemcpy(masked.data(), logits_->as<float>(), masked.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    std::vector<float> expected = logits;
    for (size_t t = 0; t < expected.size(); ++t) {
      if (!((allowed[t / 64] >> (t % 64)) & 1)) expected[t] = -std::numeric_limits<float>::infinity();
    }
    ASSERT_EQ(masked, expected);
    const std::vector<int32_t> greedy = Draw(DeviceSampling{}, 0, 1);
    EXPECT_EQ(greedy[0], ArgMax(expected));
    for (int32_t token : Draw({.temperature = 2.0f, .seed = 9}, 0, 200)) {
      EXPECT_TRUE((allowed[static_cast<size_t>(token) / 64] >> (token % 64)) & 1) << token;
    }
  }
  EXPECT_EQ(cuda::LaunchMaskLogits(logits_->as<float>(), 0, nullptr, stream_), cudaErrorInvalidValue);
  // Time at Gemma 4's vocabulary, a mask of about half the ids.
  Upload(NormalLogits(kGemma4Vocab, 3.0f, 5));
  std::vector<uint64_t> half(kGemma4Vocab / 64, 0x5555555555555555ull);
  DeviceMemory mask(half.size() * 8);
  ASSERT_EQ(cudaMemcpy(mask.as<uint64_t>(), half.data(), half.size() * 8, cudaMemcpyHostToDevice), cudaSuccess);
  cudaEvent_t start, stop;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  ASSERT_EQ(cuda::LaunchMaskLogits(logits_->as<float>(), kGemma4Vocab, mask.as<uint64_t>(), stream_), cudaSuccess);
  constexpr int kCalls = 1000;
  ASSERT_EQ(cudaEventRecord(start, stream_), cudaSuccess);
  for (int i = 0; i < kCalls; ++i) ASSERT_EQ(cuda::LaunchMaskLogits(logits_->as<float>(), kGemma4Vocab, mask.as<uint64_t>(), stream_), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(stop, stream_), cudaSuccess);
  ASSERT_EQ(cudaEventSynchronize(stop), cudaSuccess);
  float ms = 0.0f;
  ASSERT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
  std::printf("[ sampling ] vocab %lld, allowed-token mask %7.2f us/call on a stream\n", static_cast<long long>(kGemma4Vocab),
              1000.0f * ms / kCalls);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

TEST_F(SamplingKernelTest, PrintsTimeAtGemma4Vocabulary) {
  Upload(NormalLogits(kGemma4Vocab, /*stddev=*/3.0f, /*seed=*/5));
  DeviceMemory token(sizeof(int32_t)), logprob(sizeof(float));
  struct Setting {
    const char* name;
    DeviceSampling params;
  };
  const Setting settings[] = {
      {"greedy", {}},
      {"T=1 top_k=64 top_p=0.95", {.temperature = 1.0f, .top_k = 64, .top_p = 0.95f}},
      {"T=1 top_k=64", {.temperature = 1.0f, .top_k = 64}},
      {"T=1 top_p=0.95", {.temperature = 1.0f, .top_p = 0.95f}},
      {"T=1 min_p=0.05", {.temperature = 1.0f, .min_p = 0.05f}},
  };
  cudaEvent_t start, stop;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  for (const Setting& setting : settings) {
    auto run = [&] { return Launch(setting.params, token.as<int32_t>(), logprob.as<float>(), nullptr); };
    SetCounter(0);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(run(), cudaSuccess);
    constexpr int kCalls = 1000;
    ASSERT_EQ(cudaEventRecord(start, stream_), cudaSuccess);
    for (int i = 0; i < kCalls; ++i) ASSERT_EQ(run(), cudaSuccess);
    ASSERT_EQ(cudaEventRecord(stop, stream_), cudaSuccess);
    ASSERT_EQ(cudaEventSynchronize(stop), cudaSuccess);
    float stream_ms = 0.0f;
    ASSERT_EQ(cudaEventElapsedTime(&stream_ms, start, stop), cudaSuccess);
    // One graph of 100 calls, replayed 10 times.
    constexpr int kPerGraph = 100, kGraphReplays = 10;
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    for (int i = 0; i < kPerGraph; ++i) run();
    ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);  // warm-up
    ASSERT_EQ(cudaEventRecord(start, stream_), cudaSuccess);
    for (int i = 0; i < kGraphReplays; ++i) ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
    ASSERT_EQ(cudaEventRecord(stop, stream_), cudaSuccess);
    ASSERT_EQ(cudaEventSynchronize(stop), cudaSuccess);
    float graph_ms = 0.0f;
    ASSERT_EQ(cudaEventElapsedTime(&graph_ms, start, stop), cudaSuccess);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    std::printf("[ sampling ] vocab %lld, %-26s %7.2f us/call on a stream, %7.2f us/call in a graph\n",
                static_cast<long long>(kGemma4Vocab), setting.name, 1000.0f * stream_ms / kCalls,
                1000.0f * graph_ms / (kPerGraph * kGraphReplays));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

}  // namespace
}  // namespace kiln
