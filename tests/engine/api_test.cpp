// The public API (include/kiln/kiln.h) as a program embedding kiln uses it: nothing else included.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "kiln/kiln.h"

namespace kiln {
namespace {

const std::string kFixtures = KILN_FIXTURES_DIR;
const std::string kBundled = KILN_BUNDLED_MODEL_DIR;
// g31b's reference.json: transformers' greedy continuation (EOS disabled).
const std::vector<int32_t> kGreedyPrompt = {2, 37, 377, 64, 34, 340, 408, 291, 322, 172, 338, 509, 420, 441, 143, 487, 317, 120, 198, 109, 312, 471, 376, 10};
const std::vector<int32_t> kGreedyTokens = {318, 311, 318, 376, 376, 376, 324, 382, 278, 215};

ModelOptions Options(int64_t context, int64_t chunk, int64_t parallel) {
  ModelOptions options;
  options.context = context;
  options.chunk = chunk;
  options.parallel = parallel;
  options.threads = 2;
  return options;
}

std::unique_ptr<Model> LoadFixture(int64_t parallel = 4) {
  auto model = Model::Load(kFixtures + "/g31b", Options(64, 8, parallel));
  EXPECT_TRUE(model.has_value()) << model.error().ToString();
  return model.has_value() ? std::move(*model) : nullptr;
}

GenerationRequest Greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
  GenerationRequest request;
  request.prompt_tokens = std::move(prompt);
  request.max_tokens = max_tokens;
  request.sampling = SamplingParams{};
  request.ignore_eos = true;
  return request;
}

TEST(ApiTest, GenerateEqualsTransformersGreedy) {
  auto model = LoadFixture();
  ASSERT_TRUE(model);
  auto done = model->Generate(Greedy(kGreedyPrompt, 10));
  ASSERT_TRUE(done.has_value()) << done.error().ToString();
  EXPECT_EQ(done->tokens, kGreedyTokens);
  EXPECT_EQ(done->stop_reason, "max_tokens");
  EXPECT_EQ(done->prompt_tokens, 24);
  const ModelInfo info = model->info();
  EXPECT_EQ(info.device, "cpu");
  EXPECT_EQ(info.parallel, 4);
  EXPECT_EQ(info.context, 64);
  EXPECT_FALSE(info.has_tokenizer);
}

TEST(ApiTest, ConcurrentRequestsFromManyThreadsStreamAndFinish) {
  auto model = LoadFixture();
  ASSERT_TRUE(model);
  auto solo = model->Generate(Greedy(kGreedyPrompt, 10));
  ASSERT_TRUE(solo.has_value());
  std::mutex mutex;
  std::vector<Completion> completions;
  std::atomic<int> streamed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        GenerationRequest request = Greedy(kGreedyPrompt, 10);
        request.on_token = [&](const TokenEvent& event) { streamed += event.id >= 0; };
        request.on_done = [&](const Completion& c) {
          std::lock_guard<std::mutex> lock(mutex);
          completions.push_back(c);
        };
        ASSERT_TRUE(model->Submit(std::move(request)).has_value());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  model.reset();  // lets every submitted request finish
  ASSERT_EQ(completions.size(), 12u);
  for (const Completion& c : completions) {
    EXPECT_FALSE(c.error.has_value());
    EXPECT_EQ(c.tokens, kGreedyTokens);
  }
  EXPECT_EQ(streamed.load(), 120);
}

TEST(ApiTest, CancelEndsARequest) {
  auto model = LoadFixture(1);
  ASSERT_TRUE(model);
  std::promise<Completion> done;
  GenerationRequest request = Greedy(kGreedyPrompt, 40);
  std::atomic<RequestId> id{0};
  std::atomic<bool> cancelled{false};
  request.on_token = [&](const TokenEvent& event) {
    if (event.index == 2 && !cancelled.exchange(true)) model->Cancel(id.load());
  };
  request.on_done = [&](const Completion& c) { done.set_value(c); };
  // The id is known only after Submit returns; the driver may already run: cancel by polling.
  auto submitted = model->Submit(std::move(request));
  ASSERT_TRUE(submitted.has_value());
  id = *submitted;
  if (!cancelled) model->Cancel(*submitted);
  const Completion c = done.get_future().get();
  EXPECT_EQ(c.stop_reason, "cancelled");
  EXPECT_LT(c.tokens.size(), 40u);
}

TEST(ApiTest, RequestsThatCanNeverRunAreRefused) {
  auto model = LoadFixture();
  ASSERT_TRUE(model);
  GenerationRequest two = Greedy({2, 3}, 4);
  two.prompt = "text";
  auto both = model->Submit(two);
  ASSERT_FALSE(both.has_value());
  EXPECT_EQ(both.error().message(), "give exactly one of prompt_tokens, prompt, messages (2 given)");
  GenerationRequest text;
  text.prompt = "hello";
  auto no_tokenizer = model->Submit(text);
  ASSERT_FALSE(no_tokenizer.has_value());
  EXPECT_EQ(no_tokenizer.error().code(), ErrorCode::kNotFound);
  auto too_long = model->Submit(Greedy(std::vector<int32_t>(65, 5), 4));
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error().code(), ErrorCode::kOutOfRange);
  auto bad_options = Model::Load(kFixtures + "/g31b", Options(4096, 8, 9));
  ASSERT_FALSE(bad_options.has_value());
  EXPECT_EQ(bad_options.error().message(), "parallel must be in [1, chunk 8], got 9");
  auto missing = Model::Load("/nonexistent/model");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

// A context whose KV cache cannot fit the machine is refused at load, with the numbers and what
// to change, before anything is allocated (on the CPU its pages would only fail, or swap, once a
// long sequence touched them).
TEST(ApiTest, AContextLargerThanTheMachineIsRefusedAtLoad) {
  const int64_t physical = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  ASSERT_GT(physical, 0);
  // The bundled model keeps 2 KiB of K/V per position (two full-attention layers, one 128-wide
  // f32 KV head, K and V): a power of two of positions past twice the machine's memory.
  int64_t context = 1 << 20;
  while (context * 2048 <= 2 * physical) context *= 2;
  const auto start = std::chrono::steady_clock::now();
  auto model = Model::Load(kBundled, Options(context, 256, 1));
  ASSERT_FALSE(model.has_value());
  EXPECT_EQ(model.error().code(), ErrorCode::kOutOfMemory);
  const std::string message = model.error().message();
  EXPECT_NE(message.find("the model needs "), std::string::npos) << message;
  EXPECT_NE(message.find("positions"), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(context)), std::string::npos) << message;
  EXPECT_NE(message.find("is all the memory this machine has; lower the context (--ctx)"), std::string::npos) << message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));  // refused, not allocated and touched
}

TEST(ApiTest, TextPromptsThroughTheTokenizerOfTheBundledModel) {
  auto model = Model::Load(kBundled, Options(256, 64, 2));
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  const ModelInfo info = (*model)->info();
  ASSERT_TRUE(info.has_tokenizer);
  auto ids = (*model)->Tokenize("The jury said");
  ASSERT_TRUE(ids.has_value());
  auto text = (*model)->Detokenize(*ids);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(*text, "The jury said");
  GenerationRequest request;
  request.prompt = "The jury said";
  request.max_tokens = 12;
  request.sampling = SamplingParams{};
  auto plain = (*model)->Generate(request);
  ASSERT_TRUE(plain.has_value()) << plain.error().ToString();
  EXPECT_EQ(plain->prompt_tokens, static_cast<int64_t>(ids->size()));
  auto decoded = (*model)->Detokenize(plain->tokens);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, plain->text);
  // Same prompt again: its whole blocks come from the prefix cache, and the text is the same.
  auto again = (*model)->Generate(request);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->text, plain->text);
  if (info.has_chat_template) {
    GenerationRequest chat;
    chat.messages = {{"system", "Be brief."}, {"user", "The jury said"}};
    chat.max_tokens = 4;
    auto rendered = (*model)->ApplyChatTemplate(chat.messages);
    ASSERT_TRUE(rendered.has_value()) << rendered.error().ToString();
    auto answered = (*model)->Generate(chat);
    ASSERT_TRUE(answered.has_value()) << answered.error().ToString();
    EXPECT_EQ(answered->prompt_tokens, static_cast<int64_t>(rendered->size()));
  }
  GenerationRequest role;
  role.messages = {{"robot", "hi"}};
  auto bad_role = (*model)->Submit(role);
  ASSERT_FALSE(bad_role.has_value());
  EXPECT_EQ(bad_role.error().message(), "message role must be system, user, assistant or tool, got 'robot'");
}

}  // namespace
}  // namespace kiln
