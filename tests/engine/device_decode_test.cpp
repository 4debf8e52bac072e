// The pipelined decode of Session::DecodeOnDevice and the Generator's device path, on a machine
// without a GPU: a backend that wraps the CPU one and does what the CUDA backend does in its
// decode loop — every enqueued step really runs (its K and V reach the cache) and samples its
// successor greedily, and the host only sees the tokens later, in order. So steps run past a
// stop have written the cache, as on the GPU, and the rollback must hold.
#include <gtest/gtest.h>

#include <deque>
#include <limits>
#include <regex>

#include "backends/cpu/cpu_backend.h"
#include "engine/generator.h"
#include "cpu_backend_with.h"
#include "engine/model_loader.h"
#include "engine/sampler.h"
#include "io/json_file.h"
#include "synthetic_constraint.h"

namespace kiln {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

class QueuedDecodeSession : public PlacedModel {
 public:
  QueuedDecodeSession(std::unique_ptr<PlacedModel> inner, int64_t vocab) : inner_(std::move(inner)), logits_(vocab) {}
  Status RunStep(const StepFunction& step, const StepIo& io) override { return inner_->RunStep(step, io); }
  MemoryReport memory() const override { return inner_->memory(); }
  bool SupportsDecodeOnDevice() const override { return true; }
  Status BeginDecode(const StepFunction& step, int32_t token, int64_t position, std::span<const int32_t> block_table,
                     const DeviceSampling& sampling, bool masked) override {
    if (sampling.temperature != 0.0f) return Error(ErrorCode::kUnsupported, "the test backend samples greedily");
    masked_ = masked;
    awaiting_mask_ = false;
    step_ = &step;
    table_.assign(block_table.begin(), block_table.end());
    token_ = token;
    position_ = static_cast<int32_t>(position);
    done_.clear();
    return Status::Ok();
  }
  Status EnqueueDecode() override {
    if (static_cast<int>(done_.size()) == kMaxDecodeInFlight) return Error(ErrorCode::kInternal, "too many in flight");
    if (awaiting_mask_) return Error(ErrorCode::kInternal, "a step enqueued before the mask of the one before it");
    ++enqueued;
    if (fail_after >= 0 && enqueued > fail_after) return Error(ErrorCode::kDeviceUnavailable, "step failed");
    StepIo io;
    io.token_ids = {&token_, 1};
    io.positions = {&position_, 1};
    io.sequences = {&sequence_, 1};
    io.logit_rows = {&sequence_, 1};  // row 0
    io.block_tables = table_;
    io.num_sequences = 1;
    io.logits = logits_.data();
    TRY(inner_->RunStep(*step_, io));
    if (masked_) {
      // The model ran; the draw waits for its mask. Token k not yet handed back while step
      // k+1 runs: two steps in flight.
      awaiting_mask_ = true;
      max_in_flight = std::max(max_in_flight, static_cast<int>(done_.size()) + 1);
      return Status::Ok();
    }
    Draw();
    return Status::Ok();
  }
  Status SubmitDecodeMask(std::span<const uint64_t> allowed) override {
    if (!awaiting_mask_) return Error(ErrorCode::kInternal, "a mask without a step waiting for it");
    awaiting_mask_ = false;
    ++masks;
    for (size_t t = 0; t < logits_.size(); ++t) {
      if (!((allowed[t / 64] >> (t % 64)) & 1)) logits_[t] = -std::numeric_limits<float>::infinity();
    }
    Draw();
    return Status::Ok();
  }
  Result<SampledToken> NextDecoded() override {
    if (done_.empty()) return Error(ErrorCode::kInternal, "nothing in flight");
    const SampledToken token = done_.front();
    done_.pop_front();
    return token;
  }
  void EndDecode() override { done_.clear(); }

  int64_t enqueued = 0, masks = 0;
  int64_t fail_after = -1;
  int max_in_flight = 0;

 private:
  void Draw() {
    token_ = ArgMax(logits_);
    ++position_;
    done_.push_back({token_, Logprob(logits_, token_)});
    max_in_flight = std::max(max_in_flight, static_cast<int>(done_.size()));
  }
  bool masked_ = false, awaiting_mask_ = false;
  std::unique_ptr<PlacedModel> inner_;
  const StepFunction* step_ = nullptr;
  int32_t token_ = 0, position_ = 0, sequence_ = 0;
  std::vector<int32_t> table_;
  std::vector<float> logits_;
  std::deque<SampledToken> done_;
};

using QueuedDecodeBackend = testing::CpuBackendWith<QueuedDecodeSession>;

class DeviceDecodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reference = ReadJsonFile(FixtureDir("g31b") + "/reference.json");
    ASSERT_TRUE(reference.has_value());
    prompt_ = (*reference)["prompt"].get<std::vector<int32_t>>();
    greedy_ = (*reference)["greedy_tokens"].get<std::vector<int32_t>>();
  }
  // g31b: sliding window 6, so with a chunk of `chunk` the rings hold 5 + chunk positions.
  void Load(int64_t chunk, int64_t context = 64) {
    LoadOptions options;
    options.max_tokens = chunk;
    options.max_context = context;
    options.num_threads = 2;
    auto model = LoadedModel::Load(FixtureDir("g31b"), options);
    ASSERT_TRUE(model.has_value()) << model.error().ToString();
    model_ = std::move(*model);
    backend_ = std::make_unique<QueuedDecodeBackend>(model_->architecture().vocab_size());
  }
  Session NewSession() {
    std::vector<WeightView> views;
    const auto bytes = model_->WeightBytes();
    for (size_t i = 0; i < bytes.size(); ++i) {
      views.push_back({bytes[i].data(), model_->program().weights[i].dtype, static_cast<int64_t>(bytes[i].size())});
    }
    auto session = Session::Create(model_->program(), *backend_, std::move(views), {});
    EXPECT_TRUE(session.has_value()) << session.error().ToString();
    return std::move(*session);
  }
  // The logits of `sequence` then `next`, computed the plain way.
  std::vector<float> Reference(const std::vector<int32_t>& sequence, int32_t next) {
    auto session = model_->NewSession();
    EXPECT_TRUE(session.has_value());
    EXPECT_TRUE(session->Prefill(sequence).has_value());
    return session->Step({&next, 1}).value();
  }

  std::vector<int32_t> prompt_, greedy_;
  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<QueuedDecodeBackend> backend_;
};

TEST_F(DeviceDecodeTest, GreedyThroughTheQueueEqualsTransformers) {
  Load(8);
  Session session = NewSession();
  Generator generator(session, nullptr);
  for (int depth : {1, 3, 8}) {
    GenerateOptions options;
    options.max_new_tokens = static_cast<int64_t>(greedy_.size());
    options.ignore_eos = true;
    options.decode_depth = depth;
    generator.Reset();
    auto result = generator.Generate(prompt_, options);
    ASSERT_TRUE(result.has_value()) << result.error().ToString();
    EXPECT_EQ(result->tokens, greedy_) << "depth " << depth;
    EXPECT_EQ(result->decode_steps, static_cast<int64_t>(greedy_.size()) - 1);
    EXPECT_EQ(session.length(), static_cast<int64_t>(prompt_.size() + greedy_.size()) - 1);
    EXPECT_LE(backend_->last->max_in_flight, depth);
    // The queue never runs more steps than tokens are asked for.
    EXPECT_EQ(backend_->last->enqueued, static_cast<int64_t>(greedy_.size()) - 1);
    backend_->last->enqueued = 0;
  }
}

TEST_F(DeviceDecodeTest, AStopRollsBackTheStepsRunPastIt) {
  for (int64_t chunk : {int64_t{1}, int64_t{8}}) {
    Load(chunk);
    Session session = NewSession();
    Generator generator(session, nullptr);
    GenerateOptions options;
    options.max_new_tokens = 10;
    options.decode_depth = 8;
    options.stop_token_ids = {greedy_[3]};  // 376: first at index 3
    auto result = generator.Generate(prompt_, options);
    ASSERT_TRUE(result.has_value()) << result.error().ToString();
    EXPECT_EQ(result->stop_reason, StopReason::kEos);
    EXPECT_EQ(result->tokens, std::vector<int32_t>(greedy_.begin(), greedy_.begin() + 4));
    // Steps past the stop ran (the queue stays full) but do not count.
    EXPECT_GT(backend_->last->enqueued, 3);
    EXPECT_EQ(session.length(), static_cast<int64_t>(prompt_.size()) + 3);
    // With a chunk of 1 the rings hold 6 positions: the depth is cut to 2 so that the steps
    // past the stop cannot overwrite the window the next step reads.
    EXPECT_LE(backend_->last->max_in_flight, static_cast<int>(chunk) + 1);
    std::vector<int32_t> sequence = prompt_;
    sequence.insert(sequence.end(), greedy_.begin(), greedy_.begin() + 3);
    const std::vector<float> expected = Reference(sequence, greedy_[3]);
    auto actual = session.Step({&greedy_[3], 1});
    ASSERT_TRUE(actual.has_value());
    float worst = 0.0f;
    for (size_t i = 0; i < expected.size(); ++i) worst = std::max(worst, std::abs(expected[i] - (*actual)[i]));
    EXPECT_LT(worst, 1e-5f) << "chunk " << chunk;
  }
}

TEST_F(DeviceDecodeTest, TheContextEndsTheQueue) {
  Load(8, static_cast<int64_t>(24 + 5));
  Session session = NewSession();
  Generator generator(session, nullptr);
  GenerateOptions options;
  options.max_new_tokens = 50;
  options.ignore_eos = true;
  auto result = generator.Generate(prompt_, options);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->stop_reason, StopReason::kContextFull);
  EXPECT_EQ(result->tokens, std::vector<int32_t>(greedy_.begin(), greedy_.begin() + 6));
  EXPECT_EQ(session.length(), 29);
}

TEST_F(DeviceDecodeTest, HostSamplingWhereTheLogitsAreNeeded) {
  Load(8);
  Session session = NewSession();
  Generator generator(session, nullptr);
  GenerateOptions options;
  options.max_new_tokens = 5;
  options.ignore_eos = true;
  options.top_logprobs = 2;  // needs the logits on the host
  auto result = generator.Generate(prompt_, options);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(backend_->last->enqueued, 0);
  EXPECT_EQ(result->tokens, std::vector<int32_t>(greedy_.begin(), greedy_.begin() + 5));
  options.top_logprobs = 0;
  options.decode_depth = 0;  // asked for
  generator.Reset();
  ASSERT_TRUE(generator.Generate(prompt_, options).has_value());
  EXPECT_EQ(backend_->last->enqueued, 0);
}

TEST_F(DeviceDecodeTest, AFailedStepIsReportedAndTheCacheForgotten) {
  Load(8);
  Session session = NewSession();
  Generator generator(session, nullptr);
  backend_->last->fail_after = 2;
  GenerateOptions options;
  options.max_new_tokens = 10;
  options.ignore_eos = true;
  auto result = generator.Generate(prompt_, options);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), ErrorCode::kDeviceUnavailable);
  EXPECT_EQ(result.error().message(), "step failed");
  EXPECT_TRUE(generator.cached_tokens().empty());
  // The next request starts over and succeeds.
  backend_->last->fail_after = -1;
  result = generator.Generate(prompt_, options);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->tokens, greedy_);
}

// Structured output on the device: each draw masked there, the host one step behind. The tokens
// equal the host path's (the same greedy choice among the allowed ids), the mask of step k+1 is
// asked for while step k+1 runs, and the text matches the regex.
TEST_F(DeviceDecodeTest, AConstraintMasksEachDrawOnTheDevice) {
  Load(8);
  const std::string pattern = "(ab|ba)[01]{3,9}x?y{1,2}";
  const ConstraintSpec constraint = testing::SyntheticRegexConstraint(model_->architecture().vocab_size(), pattern);
  ASSERT_TRUE(constraint);
  Session session = NewSession();
  Generator generator(session, nullptr);
  auto generate = [&](int depth) {
    GenerateOptions options;
    options.max_new_tokens = 20;
    options.decode_depth = depth;
    options.constraint = constraint;
    generator.Reset();
    return generator.Generate(prompt_, options);
  };
  auto on_host = generate(0);
  ASSERT_TRUE(on_host.has_value()) << on_host.error().ToString();
  EXPECT_EQ(backend_->last->enqueued, 0);
  auto on_device = generate(4);
  ASSERT_TRUE(on_device.has_value()) << on_device.error().ToString();
  EXPECT_EQ(on_device->tokens, on_host->tokens);
  EXPECT_EQ(on_device->stop_reason, on_host->stop_reason);
  EXPECT_EQ(on_device->stop_reason, StopReason::kEos);  // the grammar ended: only eos was left
  // Every token after the first (sampled from the prefill on the host) was drawn on the device.
  const int64_t drawn = static_cast<int64_t>(on_device->tokens.size()) - 1;
  EXPECT_GT(drawn, 4);
  EXPECT_EQ(backend_->last->masks, drawn);
  EXPECT_EQ(backend_->last->max_in_flight, 2);
  std::string text;
  for (int32_t id : on_device->tokens) {
    if (id != 1) text += testing::SyntheticTokenText(id);
  }
  EXPECT_TRUE(std::regex_match(text, std::regex(pattern))) << text;
  EXPECT_EQ(session.length(), static_cast<int64_t>(prompt_.size() + on_device->tokens.size()) - 1);
}

TEST_F(DeviceDecodeTest, DecodeOnDeviceChecksItsArguments) {
  Load(8);
  Session session = NewSession();
  ASSERT_TRUE(session.Prefill(prompt_).has_value());
  auto accept = [](const SampledToken&) { return true; };
  auto bad_token = session.DecodeOnDevice(512, {}, 4, 4, accept);
  ASSERT_FALSE(bad_token.has_value());
  EXPECT_EQ(bad_token.error().message(), "token id 512 is outside the vocabulary [0, 512)");
  auto bad_depth = session.DecodeOnDevice(5, {}, 4, 9, accept);
  ASSERT_FALSE(bad_depth.has_value());
  EXPECT_EQ(bad_depth.error().message(), "decode depth must be in [1, 8], got 9");
  auto none = session.DecodeOnDevice(5, {}, 0, 4, accept);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(*none, 0);
  EXPECT_EQ(session.length(), 24);
}

}  // namespace
}  // namespace kiln
