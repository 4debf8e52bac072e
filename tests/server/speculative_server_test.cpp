// A server whose model speculates (ModelOptions::speculative, `kiln serve --spec-type ngram`):
// the same completions as a model that does not, and the draft counters in /metrics.
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
}

}  // namespace
}  // namespace kiln::server::testing
