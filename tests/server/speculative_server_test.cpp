// A server whose model speculates (ModelOptions::speculative, `kiln serve --spec-type ngram`, or
// ModelOptions::draft_model, `kiln serve --draft MODEL`): the same completions as a model that
// does not, and the draft counters in /metrics.
#include "server_fixture.h"

namespace kiln::server::testing {
namespace {

double MetricValue(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

TEST(SpeculativeServer, CompletionsEqualPlainDecodingAndDraftsAreCounted) {
  Server server(LocalOptions());
  auto port = server.Start();
  ASSERT_TRUE(port.has_value());
  ModelOptions options = TestModelOptions();
  options.speculative = "ngram";
  options.draft_max = 4;
  auto model = Model::Load(kModelDir, options);
  ASSERT_TRUE(model.has_value()) << model.error().message();
  server.SetModel(std::move(*model), "brown-gemma4");
  auto oracle = Model::Load(kModelDir, TestModelOptions());
  ASSERT_TRUE(oracle.has_value());

  const std::string passage = "The river rose for three days after the storm, and the people moved their cattle. ";
  const std::string prompt = passage + passage + "The river rose";
  GenerationRequest request;
  request.prompt = prompt;
  request.max_tokens = 32;
  SamplingParams greedy = (*oracle)->info().default_sampling;  // the request's unset fields: the model's defaults
  greedy.temperature = 0;
  request.sampling = greedy;
  auto expected = (*oracle)->Generate(request);
  ASSERT_TRUE(expected.has_value());

  const json body = {{"model", "brown-gemma4"}, {"prompt", prompt}, {"max_tokens", 32}, {"temperature", 0}};
  HttpReply reply = Send(*port, "POST", "/v1/completions", body.dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.Json()["choices"][0]["text"], expected->text);

  HttpReply metrics = Send(*port, "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const double drafted = MetricValue(metrics.body, "kiln_draft_tokens_total");
  const double accepted = MetricValue(metrics.body, "kiln_draft_tokens_accepted_total");
  EXPECT_GT(accepted, 0) << metrics.body;
  EXPECT_GE(drafted, accepted);
  // By draft position: every round drafts a first token; acceptance through position i never
  // exceeds the rounds that drafted that far, nor the acceptance through position i - 1.
  const double first_rounds = MetricValue(metrics.body, "kiln_draft_rounds_by_position_total{position=\"1\"}");
  const double first_accepted = MetricValue(metrics.body, "kiln_draft_accepted_by_position_total{position=\"1\"}");
  const double second_accepted = MetricValue(metrics.body, "kiln_draft_accepted_by_position_total{position=\"2\"}");
  EXPECT_GT(first_rounds, 0) << metrics.body;
  EXPECT_GT(first_accepted, 0);
  EXPECT_LE(first_accepted, first_rounds);
  EXPECT_LE(second_accepted, first_accepted);
}

// A draft model (ModelOptions::draft_model, `kiln serve --draft MODEL`): the bundled model drafting
// for itself. Chat completions equal a plain server's, greedy and seeded at 0.9, and /metrics
// counts the drafts (every greedy draft of a model's own is accepted).
TEST(SpeculativeServer, DraftModelChatCompletionsEqualAPlainServers) {
  Server plain_server(LocalOptions());
  auto plain_port = plain_server.Start();
  ASSERT_TRUE(plain_port.has_value());
  auto plain = Model::Load(kModelDir, TestModelOptions());
  ASSERT_TRUE(plain.has_value());
  plain_server.SetModel(std::move(*plain), "brown-gemma4");
  Server server(LocalOptions());
  auto port = server.Start();
  ASSERT_TRUE(port.has_value());
  ModelOptions options = TestModelOptions();
  options.draft_model = kModelDir;
  options.draft_max = 4;
  auto model = Model::Load(kModelDir, options);
  ASSERT_TRUE(model.has_value()) << model.error().message();
  server.SetModel(std::move(*model), "brown-gemma4");

  // Long enough for whole KV blocks of prompt to be cached on the draft model.
  const json messages = json::array({{{"role", "user"}, {"content", "Tell me about the jury and the city election, the mayor's "
                                                                    "office, the new school board and what the county commissioners "
                                                                    "said about the roads and the bridge over the river."}}});
  // Greedy without the model's default repetition penalty: the drafts are plain argmax.
  const json greedy = {{"model", "brown-gemma4"}, {"messages", messages}, {"max_tokens", 40}, {"temperature", 0},
                       {"repetition_penalty", 1.0}};
  HttpReply expected = Send(*plain_port, "POST", "/v1/chat/completions", greedy.dump());
  HttpReply got = Send(*port, "POST", "/v1/chat/completions", greedy.dump());
  ASSERT_EQ(expected.status, 200) << expected.body;
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.Json()["choices"][0]["message"], expected.Json()["choices"][0]["message"]);
  EXPECT_EQ(got.Json()["usage"]["completion_tokens"], expected.Json()["usage"]["completion_tokens"]);

  HttpReply metrics = Send(*port, "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const double drafted = MetricValue(metrics.body, "kiln_draft_tokens_total");
  const double accepted = MetricValue(metrics.body, "kiln_draft_tokens_accepted_total");
  EXPECT_GT(drafted, 0) << metrics.body;
  EXPECT_EQ(accepted, drafted) << "a model accepts its own greedy drafts";
  EXPECT_EQ(MetricValue(metrics.body, "kiln_draft_prompt_tokens_cached_total"), 0) << "nothing cached on the draft model yet";

  json seeded = greedy;  // with the model's repetition penalty: rows the drafts may disagree with
  seeded.erase("repetition_penalty");
  seeded["temperature"] = 0.9;
  seeded["seed"] = 7;
  expected = Send(*plain_port, "POST", "/v1/chat/completions", seeded.dump());
  ASSERT_EQ(expected.status, 200) << expected.body;
  got = Send(*port, "POST", "/v1/chat/completions", seeded.dump());
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.Json()["choices"][0]["message"], expected.Json()["choices"][0]["message"]);
  metrics = Send(*port, "GET", "/metrics");
  EXPECT_GT(MetricValue(metrics.body, "kiln_draft_tokens_total"), drafted);
  // The same prompt again: the draft model takes it from its prefix cache.
  EXPECT_GT(MetricValue(metrics.body, "kiln_draft_prompt_tokens_cached_total"), 0) << metrics.body;
}

}  // namespace
}  // namespace kiln::server::testing
