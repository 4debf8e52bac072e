// The routes of kiln serve against the bundled model: shapes, values, and the generations equal
// to kiln::Model::Generate of the same prompt (temperature 0).
#include <set>

#include "server_fixture.h"

namespace kiln::server::testing {
namespace {

// The bundled model has no chat template: chat messages are their contents joined by "\n",
// encoded as a plain prompt (server/request.h).
const json kMessages = json::array({{{"role", "system"}, {"content", "You are terse."}},
                                    {{"role", "user"}, {"content", "Tell me about the jury."}}});
const char kJoined[] = "You are terse.\nTell me about the jury.";

TEST_F(ServerTest, HealthIsOk) {
  HttpReply reply = Get("/health");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, R"({"status":"ok"})");
}

TEST_F(ServerTest, ModelsListsTheOneModel) {
  json models = Get("/v1/models").Json();
  ASSERT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "brown-gemma4");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(models["data"][0]["owned_by"], "kiln");
  EXPECT_GT(models["data"][0]["created"].get<int64_t>(), 1700000000);
}

TEST_F(ServerTest, ChatEqualsGenerateOfTheJoinedMessages) {
  const Completion expected = Oracle(kJoined, 24);
  HttpReply reply = Post("/v1/chat/completions", {{"model", "brown-gemma4"}, {"messages", kMessages}, {"max_tokens", 24}, {"temperature", 0}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  json body = reply.Json();
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "brown-gemma4");
  EXPECT_EQ(body["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(body["choices"][0]["index"], 0);
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["message"]["content"], expected.text);
  EXPECT_EQ(body["choices"][0]["finish_reason"], expected.stop_reason == "max_tokens" ? "length" : "stop");
  EXPECT_EQ(body["usage"]["prompt_tokens"], expected.prompt_tokens);
  EXPECT_EQ(body["usage"]["completion_tokens"], expected.tokens.size());
  EXPECT_EQ(body["usage"]["total_tokens"], expected.prompt_tokens + static_cast<int64_t>(expected.tokens.size()));
  EXPECT_TRUE(body["usage"]["prompt_tokens_details"]["cached_tokens"].is_number_integer());
  // max_completion_tokens is the same limit; text parts are the same content.
  json parts = kMessages;
  parts[1]["content"] = json::array({{{"type", "text"}, {"text", "Tell me about "}}, {{"type", "text"}, {"text", "the jury."}}});
  json again = Post("/v1/chat/completions", {{"messages", parts}, {"max_completion_tokens", 24}, {"temperature", 0}}).Json();
  EXPECT_EQ(again["choices"][0]["message"]["content"], expected.text);
  EXPECT_NE(again["id"], body["id"]);
}

TEST_F(ServerTest, MaxTokensEndsWithLength) {
  json body = Post("/v1/completions", {{"prompt", "The jury"}, {"max_tokens", 3}, {"temperature", 0}, {"ignore_eos", true}}).Json();
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["completion_tokens"], 3);
}

TEST_F(ServerTest, StreamedChatIsFramedAndEqualsTheWholeReply) {
  const json request = {{"messages", kMessages}, {"max_tokens", 24}, {"temperature", 0}};
  json whole = Post("/v1/chat/completions", request).Json();
  json streamed_request = request;
  streamed_request["stream"] = true;
  streamed_request["stream_options"] = {{"include_usage", true}};
  HttpReply reply = Post("/v1/chat/completions", streamed_request);
  ASSERT_EQ(reply.status, 200);
  SseStream sse = ParseSse(reply.body);
  ASSERT_EQ(sse.error, "");
  ASSERT_TRUE(sse.done);
  ASSERT_GE(sse.events.size(), 3u);  // role, ..., finish, usage
  std::string content;
  const json& first = sse.events.front();
  for (size_t i = 0; i < sse.events.size(); ++i) {
    const json& chunk = sse.events[i];
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_EQ(chunk["id"], first["id"]);
    EXPECT_EQ(chunk["model"], "brown-gemma4");
    if (i + 1 == sse.events.size()) break;  // the usage chunk
    EXPECT_TRUE(chunk.contains("usage") && chunk["usage"].is_null()) << chunk.dump();
    const json& choice = chunk["choices"][0];
    EXPECT_EQ(choice["delta"].contains("role"), i == 0) << chunk.dump();
    if (i + 2 == sse.events.size()) {
      EXPECT_EQ(choice["delta"], json::object());
      EXPECT_EQ(choice["finish_reason"], whole["choices"][0]["finish_reason"]);
    } else {
      EXPECT_TRUE(choice["finish_reason"].is_null());
      content += choice["delta"]["content"].get<std::string>();
    }
  }
  EXPECT_EQ(first["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_EQ(content, whole["choices"][0]["message"]["content"]);
  const json& usage = sse.events.back();
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["completion_tokens"], whole["usage"]["completion_tokens"]);
  EXPECT_EQ(usage["usage"]["prompt_tokens"], whole["usage"]["prompt_tokens"]);
  // Without include_usage the finishing chunk is the last event.
  streamed_request.erase("stream_options");
  SseStream plain = ParseSse(Post("/v1/chat/completions", streamed_request).body);
  ASSERT_EQ(plain.error, "");
  EXPECT_EQ(plain.events.back()["choices"][0]["finish_reason"], whole["choices"][0]["finish_reason"]);
  EXPECT_FALSE(plain.events.back().contains("usage"));
}

TEST_F(ServerTest, CompletionsEqualGenerateStreamedOrNot) {
  const Completion expected = Oracle("The jury said", 20);
  json body = Post("/v1/completions", {{"prompt", "The jury said"}, {"max_tokens", 20}, {"temperature", 0}}).Json();
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(body["choices"][0]["text"], expected.text);
  EXPECT_EQ(body["usage"]["prompt_tokens"], expected.prompt_tokens);
  HttpReply reply = Post("/v1/completions", {{"prompt", "The jury said"}, {"max_tokens", 20}, {"temperature", 0}, {"stream", true}});
  SseStream sse = ParseSse(reply.body);
  ASSERT_EQ(sse.error, "");
  std::string text;
  for (const json& chunk : sse.events) {
    EXPECT_EQ(chunk["object"], "text_completion");
    text += chunk["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, expected.text);
  EXPECT_EQ(sse.events.back()["choices"][0]["finish_reason"], body["choices"][0]["finish_reason"]);
}

TEST_F(ServerTest, JsonObjectOutputParses) {
  json body = Post("/v1/chat/completions", {{"messages", kMessages},
                                            {"max_tokens", 200},
                                            {"temperature", 0},
                                            {"response_format", {{"type", "json_object"}}}})
                  .Json();
  const std::string content = body["choices"][0]["message"]["content"];
  ASSERT_FALSE(content.empty());
  EXPECT_EQ(content.find_first_not_of(" \n\t"), content.find('{')) << content;
  if (body["choices"][0]["finish_reason"] == "stop") {
    EXPECT_TRUE(json::accept(content)) << content;
  }
}

TEST_F(ServerTest, LogprobsJoinToTheContent) {
  json body = Post("/v1/chat/completions",
                   {{"messages", kMessages}, {"max_tokens", 8}, {"temperature", 0}, {"repetition_penalty", 1}, {"logprobs", true}, {"top_logprobs", 2}})
                  .Json();
  const json& entries = body["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(entries.size(), 8u);
  std::string joined;
  for (const json& entry : entries) {
    joined += entry["token"].get<std::string>();
    EXPECT_LE(entry["logprob"].get<double>(), 0.0);
    ASSERT_EQ(entry["top_logprobs"].size(), 2u);
    // Greedy without a penalty: the chosen token is the most likely one.
    EXPECT_EQ(entry["top_logprobs"][0]["token"], entry["token"]);
  }
  EXPECT_EQ(joined, body["choices"][0]["message"]["content"]);
}

// The penalties reach the model: the reply equals Model::Generate with the same penalties, and
// differs from the reply without them.
TEST_F(ServerTest, PresenceAndFrequencyPenaltiesEqualGenerateWithThem) {
  GenerationRequest request;
  request.prompt = "The jury said";
  request.max_tokens = 32;
  request.ignore_eos = true;
  request.sampling = SamplingParams{};  // greedy, no repetition penalty
  Result<Completion> plain = oracle_->Generate(request);
  request.sampling->presence_penalty = 1.5f;
  request.sampling->frequency_penalty = 2.0f;
  Result<Completion> penalized = oracle_->Generate(request);
  ASSERT_TRUE(plain.has_value() && penalized.has_value());
  EXPECT_NE(plain->text, penalized->text);
  json body = Post("/v1/completions", {{"prompt", "The jury said"}, {"max_tokens", 32}, {"ignore_eos", true}, {"temperature", 0},
                                       {"repetition_penalty", 1}, {"presence_penalty", 1.5}, {"frequency_penalty", 2}})
                  .Json();
  EXPECT_EQ(body["choices"][0]["text"], penalized->text);
}

TEST_F(ServerTest, TokenizeAndDetokenizeRoundTrip) {
  Result<std::vector<int32_t>> ids = oracle_->Tokenize("The jury said");
  ASSERT_TRUE(ids.has_value());
  json tokens = Post("/tokenize", {{"content", "The jury said"}}).Json();
  EXPECT_EQ(tokens, json({{"tokens", *ids}}));
  json text = Post("/detokenize", tokens).Json();
  EXPECT_EQ(text, json({{"content", "The jury said"}}));
}

TEST_F(ServerTest, MetricsCountRequestsAndTokens) {
  Post("/v1/completions", {{"prompt", "The jury"}, {"max_tokens", 2}, {"temperature", 0}, {"ignore_eos", true}});
  HttpReply reply = Get("/metrics");
  ASSERT_EQ(reply.status, 200);
  for (const char* name : {"kiln_requests_total", "kiln_prompt_tokens_total", "kiln_tokens_predicted_total", "kiln_requests_processing",
                           "kiln_requests_waiting", "kiln_prompt_tokens_cached_total"}) {
    EXPECT_NE(reply.body.find(std::string("# HELP ") + name + " "), std::string::npos) << name;
    EXPECT_NE(reply.body.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
  }
  EXPECT_NE(reply.body.find("\nkiln_requests_processing 0\n"), std::string::npos) << reply.body;
  EXPECT_EQ(reply.body.find("\nkiln_requests_total 0\n"), std::string::npos) << reply.body;
}

}  // namespace
}  // namespace kiln::server::testing
