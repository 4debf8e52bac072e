// The request parser alone: how OpenAI fields map onto GenerationRequest.
#include <gtest/gtest.h>

#include "server/request.h"

namespace kiln::server {
namespace {

ApiLimits Limits(bool chat_template = false) {
  ApiLimits limits;
  limits.context = 512;
  limits.model_name.assign(1, 'm');  // (not = "m": g++ 12 warns falsely, -Wrestrict)
  limits.default_sampling.temperature = 0.7f;
  limits.default_sampling.top_k = 40;
  limits.has_chat_template = chat_template;
  return limits;
}

TEST(RequestTest, NoSamplingFieldKeepsTheModelDefaults) {
  Result<ApiRequest> r = ParseCompletionRequest(R"({"prompt":"x"})", Limits());
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->generation.sampling.has_value());
  EXPECT_EQ(r->generation.prompt, "x");
  EXPECT_EQ(r->generation.max_tokens, 512);  // up to the context
  EXPECT_FALSE(r->stream);
}

TEST(RequestTest, AnySamplingFieldStartsFromTheDefaultsAndOverrides) {
  Result<ApiRequest> r = ParseCompletionRequest(R"({"prompt":"x","top_p":0.5,"seed":-1,"min_p":0.1})", Limits());
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->generation.sampling.has_value());
  EXPECT_FLOAT_EQ(r->generation.sampling->temperature, 0.7f);  // the model's
  EXPECT_EQ(r->generation.sampling->top_k, 40);                // the model's
  EXPECT_FLOAT_EQ(r->generation.sampling->top_p, 0.5f);
  EXPECT_FLOAT_EQ(r->generation.sampling->min_p, 0.1f);
  EXPECT_EQ(r->generation.sampling->seed, UINT64_MAX);  // -1 modulo 2^64
}

TEST(RequestTest, PenaltiesMapOntoSampling) {
  Result<ApiRequest> r = ParseCompletionRequest(
      R"({"prompt":"x","presence_penalty":-0.5,"frequency_penalty":1.5,"repeat_penalty":1.3,"repeat_last_n":-1})", Limits());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  ASSERT_TRUE(r->generation.sampling.has_value());
  EXPECT_FLOAT_EQ(r->generation.sampling->presence_penalty, -0.5f);
  EXPECT_FLOAT_EQ(r->generation.sampling->frequency_penalty, 1.5f);
  EXPECT_FLOAT_EQ(r->generation.sampling->repetition_penalty, 1.3f);
  EXPECT_EQ(r->generation.sampling->repetition_window, 0);  // -1: the whole sequence
  // repeat_last_n 0 turns the repetition penalty off, as in llama-server.
  r = ParseCompletionRequest(R"({"prompt":"x","repetition_penalty":1.3,"repeat_last_n":0})", Limits());
  ASSERT_TRUE(r.has_value());
  EXPECT_FLOAT_EQ(r->generation.sampling->repetition_penalty, 1.0f);
  r = ParseCompletionRequest(R"({"prompt":"x","repeat_last_n":32})", Limits());
  EXPECT_EQ(r->generation.sampling->repetition_window, 32);
}

TEST(RequestTest, StopIsAStringOrAList) {
  EXPECT_EQ(ParseCompletionRequest(R"({"prompt":"x","stop":"\n"})", Limits())->generation.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(ParseCompletionRequest(R"({"prompt":"x","stop":["a","b"]})", Limits())->generation.stop,
            (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(ParseCompletionRequest(R"({"prompt":"x","stop":null})", Limits())->generation.stop.empty());
}

TEST(RequestTest, ResponseFormatSetsStructuredOutput) {
  Result<ApiRequest> object = ParseChatRequest(R"({"messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_object"}})", Limits());
  ASSERT_TRUE(object.has_value());
  EXPECT_TRUE(object->generation.json_object);
  Result<ApiRequest> schema = ParseChatRequest(R"({"messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object"}}}})", Limits());
  ASSERT_TRUE(schema.has_value());
  EXPECT_EQ(schema->generation.json_schema, R"({"type":"object"})");
}

TEST(RequestTest, ChatGoesThroughTheTemplateWhenThereIsOne) {
  const char body[] = R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"u"}]}],
      "stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":3,"n":1})";
  Result<ApiRequest> plain = ParseChatRequest(body, Limits(/*chat_template=*/false));
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->generation.prompt, "s\nu");
  EXPECT_TRUE(plain->generation.messages.empty());
  Result<ApiRequest> templated = ParseChatRequest(body, Limits(/*chat_template=*/true));
  ASSERT_TRUE(templated.has_value());
  ASSERT_EQ(templated->generation.messages.size(), 2u);
  EXPECT_EQ(templated->generation.messages[1].role, "user");
  EXPECT_EQ(templated->generation.messages[1].content, "u");
  EXPECT_TRUE(templated->stream);
  EXPECT_TRUE(templated->include_usage);
  EXPECT_TRUE(templated->logprobs);
  EXPECT_EQ(templated->top_logprobs, 3);
}

TEST(RequestTest, TooManyMessagesAreRefused) {
  std::string body = R"({"messages":[)";
  for (int i = 0; i < 4097; ++i) {
    if (i > 0) body += ',';
    body += R"({"role":"user","content":"x"})";
  }
  body += "]}";
  Result<ApiRequest> r = ParseChatRequest(body, Limits());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "'messages' has 4097 messages, more than the limit of 4096");
}

TEST(RequestTest, UnsignedHugeIntegersAreRefusedNotWrapped) {
  Result<ApiRequest> r = ParseCompletionRequest(R"({"prompt":"x","max_tokens":18446744073709551615})", Limits());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "'max_tokens' must be an integer in [1, 512], got 18446744073709551615");
}

}  // namespace
}  // namespace kiln::server
