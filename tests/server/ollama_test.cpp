// Ollama's native routes against the bundled model: shapes (as Ollama's docs/api.md shows them),
// replies equal to Model::Generate at temperature 0, NDJSON framing, durations in nanoseconds,
// errors as {"error": "..."}.
#include <regex>

#include "server/ollama.h"
#include "server_fixture.h"

namespace kiln::server::testing {
namespace {

// RFC 3339 in UTC with nanoseconds, as Ollama writes created_at.
const std::regex kRfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z)");

// Each line of an NDJSON body as JSON; empty when a line is not JSON or the body does not end
// with a newline.
std::vector<json> Ndjson(const std::string& body) {
  std::vector<json> lines;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find('\n', pos);
    if (end == std::string::npos) return {};
    json line = json::parse(body.substr(pos, end - pos), nullptr, false);
    if (line.is_discarded()) return {};
    lines.push_back(line);
    pos = end + 1;
  }
  return lines;
}

void ExpectDoneCounts(const json& done, const Completion& expected) {
  EXPECT_EQ(done["done"], true);
  EXPECT_EQ(done["done_reason"], expected.stop_reason == "max_tokens" ? "length" : "stop");
  EXPECT_EQ(done["prompt_eval_count"], expected.prompt_tokens);
  EXPECT_EQ(done["eval_count"], expected.tokens.size());
  for (const char* name : {"total_duration", "load_duration", "prompt_eval_duration", "eval_duration"}) {
    ASSERT_TRUE(done[name].is_number_integer()) << name << ": " << done.dump();
    EXPECT_GE(done[name].get<int64_t>(), 0) << name;
  }
  // Nanoseconds: generating even one token on the CPU takes more than a microsecond.
  EXPECT_GT(done["total_duration"].get<int64_t>(), 1000);
  EXPECT_GE(done["total_duration"].get<int64_t>(), done["eval_duration"].get<int64_t>());
}

TEST_F(ServerTest, OllamaGenerateEqualsGenerate) {
  const Completion expected = Oracle("The jury said", 16);
  HttpReply reply = Post("/api/generate", {{"model", "brown-gemma4"}, {"prompt", "The jury said"}, {"stream", false},
                                           {"options", {{"temperature", 0}, {"num_predict", 16}, {"num_ctx", 8192}}}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  json body = reply.Json();
  EXPECT_EQ(body["model"], "brown-gemma4:latest");
  EXPECT_TRUE(std::regex_match(body["created_at"].get<std::string>(), kRfc3339)) << body["created_at"];
  EXPECT_EQ(body["response"], expected.text);
  ExpectDoneCounts(body, expected);
}

TEST_F(ServerTest, OllamaGenerateStreamsNdjson) {
  const Completion expected = Oracle("The jury said", 16);
  httplib::Client client("127.0.0.1", port_);
  auto result = client.Post("/api/generate",
                            json({{"model", "brown-gemma4:latest"}, {"prompt", "The jury said"}, {"options", {{"temperature", 0}, {"num_predict", 16}}}})
                                .dump(),
                            "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), "application/x-ndjson");
  const std::vector<json> lines = Ndjson(result->body);
  ASSERT_GE(lines.size(), 2u) << result->body;
  std::string text;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["done"], false);
    EXPECT_EQ(lines[i]["model"], "brown-gemma4:latest");
    text += lines[i]["response"].get<std::string>();
  }
  EXPECT_EQ(text, expected.text);
  EXPECT_EQ(lines.back()["response"], "");
  ExpectDoneCounts(lines.back(), expected);
}

TEST_F(ServerTest, OllamaChatWholeAndStreamedEqualGenerate) {
  // No chat template: the contents joined by "\n" (server/request.h).
  const Completion expected = Oracle("You are terse.\nTell me about the jury.", 12);
  const json messages = json::array({{{"role", "system"}, {"content", "You are terse."}}, {{"role", "user"}, {"content", "Tell me about the jury."}}});
  const json request = {{"model", "brown-gemma4"}, {"messages", messages}, {"options", {{"temperature", 0}, {"num_predict", 12}}}};
  json whole_request = request;
  whole_request["stream"] = false;
  json whole = Post("/api/chat", whole_request).Json();
  EXPECT_EQ(whole["message"]["role"], "assistant");
  EXPECT_EQ(whole["message"]["content"], expected.text);
  ExpectDoneCounts(whole, expected);

  const std::vector<json> lines = Ndjson(Post("/api/chat", request).body);
  ASSERT_GE(lines.size(), 2u);
  std::string text;
  for (const json& line : lines) text += line["message"]["content"].get<std::string>();
  EXPECT_EQ(text, expected.text);
  ExpectDoneCounts(lines.back(), expected);
}

TEST_F(ServerTest, OllamaEmptyPromptOnlyLoads) {
  json generate = Post("/api/generate", {{"model", "brown-gemma4"}}).Json();
  EXPECT_EQ(generate["done"], true);
  EXPECT_EQ(generate["done_reason"], "load");
  EXPECT_EQ(generate["response"], "");
  json chat = Post("/api/chat", {{"model", "brown-gemma4"}, {"messages", json::array()}}).Json();
  EXPECT_EQ(chat["done_reason"], "load");
  EXPECT_EQ(chat["message"]["content"], "");
}

TEST_F(ServerTest, OllamaFormatJsonGivesAnObject) {
  json body = Post("/api/generate", {{"model", "brown-gemma4"}, {"prompt", "Give JSON:"}, {"stream", false}, {"format", "json"},
                                     {"options", {{"temperature", 0}, {"num_predict", 48}}}})
                  .Json();
  const std::string text = body["response"];
  EXPECT_EQ(text.find_first_not_of(" \n\t"), text.find('{')) << text;
  if (body["done_reason"] == "stop") {
    EXPECT_TRUE(json::accept(text)) << text;
  }
}

TEST_F(ServerTest, OllamaPenaltiesEqualGenerateWithThem) {
  GenerationRequest request;
  request.prompt = "The jury said";
  request.max_tokens = 24;
  request.sampling = oracle_->info().default_sampling;
  request.sampling->temperature = 0;
  request.sampling->repetition_penalty = 1.3f;
  request.sampling->repetition_window = 16;
  request.sampling->frequency_penalty = 1.0f;
  Result<Completion> expected = oracle_->Generate(request);
  ASSERT_TRUE(expected.has_value());
  json body = Post("/api/generate", {{"model", "brown-gemma4"}, {"prompt", "The jury said"}, {"stream", false},
                                     {"options", {{"temperature", 0}, {"num_predict", 24}, {"repeat_penalty", 1.3},
                                                  {"repeat_last_n", 16}, {"frequency_penalty", 1.0}}}})
                  .Json();
  EXPECT_EQ(body["response"], expected->text);
}

TEST_F(ServerTest, OllamaModelRoutes) {
  json tags = Get("/api/tags").Json();
  ASSERT_EQ(tags["models"].size(), 1u);
  const json& tag = tags["models"][0];
  EXPECT_EQ(tag["name"], "brown-gemma4:latest");
  EXPECT_EQ(tag["model"], "brown-gemma4:latest");
  EXPECT_TRUE(std::regex_match(tag["modified_at"].get<std::string>(), kRfc3339));
  EXPECT_EQ(tag["size"], oracle_->info().weight_bytes);
  EXPECT_EQ(tag["details"]["format"], "safetensors");
  EXPECT_TRUE(tag["digest"].is_string());

  json ps = Get("/api/ps").Json();
  ASSERT_EQ(ps["models"].size(), 1u);
  EXPECT_EQ(ps["models"][0]["name"], "brown-gemma4:latest");
  EXPECT_EQ(ps["models"][0]["context_length"], kContext);
  EXPECT_EQ(ps["models"][0]["size_vram"], 0);  // on the CPU
  EXPECT_GT(ps["models"][0]["expires_at"].get<std::string>(), tag["modified_at"].get<std::string>());

  json show = Post("/api/show", {{"model", "brown-gemma4:latest"}}).Json();
  EXPECT_EQ(show["capabilities"], json::array({"completion"}));  // no chat template: no tools
  EXPECT_NE(show["parameters"].get<std::string>().find("num_ctx 512"), std::string::npos) << show["parameters"];
  EXPECT_TRUE(show["details"].is_object());
  EXPECT_EQ(show["model_info"]["general.basename"], "brown-gemma4");

  EXPECT_EQ(Get("/api/version").Json(), json({{"version", kOllamaApiVersion}}));
}

TEST_F(ServerTest, OllamaErrorsAreOllamasShape) {
  struct Case {
    const char* method;
    const char* path;
    std::string body;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"POST", "/api/generate", R"({"prompt":"x"})", 400, "model is required"},
      {"POST", "/api/chat", R"({"model":"llama3","messages":[]})", 404, "model 'llama3' not found; this server serves 'brown-gemma4:latest'"},
      {"POST", "/api/show", R"({"name":"llama3"})", 404, "model 'llama3' not found; this server serves 'brown-gemma4:latest'"},
      {"POST", "/api/generate", "{", 400, "the request body is not valid JSON"},
      {"POST", "/api/generate", R"({"model":"brown-gemma4","prompt":"x","options":{"temperature":-1}})", 400,
       "'temperature' must be in [0.0, 2.0], got -1"},
      {"POST", "/api/generate", R"({"model":"brown-gemma4","prompt":"x","options":{"num_predict":-3}})", 400,
       "'num_predict' must be an integer in [-2, 2147483647], got -3"},
      {"POST", "/api/generate", R"({"model":"brown-gemma4","prompt":"x","format":"xml"})", 400,
       "'format' must be \"json\" or a JSON Schema object, got \"xml\""},
      {"POST", "/api/generate", R"({"model":"brown-gemma4","prompt":"x","suffix":"y"})", 400,
       "'suffix' (fill-in-the-middle) is not supported by this model"},
      {"POST", "/api/chat", R"({"model":"brown-gemma4","messages":[{"role":"user","content":"x","images":["aGk="]}]})", 400,
       "'messages[0].images': this server takes text only"},
      {"POST", "/api/chat",
       R"({"model":"brown-gemma4","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]})",
       400, "'tools' need the model's chat template, and this model has none"},
      {"POST", "/api/pull", R"({"model":"llama3"})", 404, "no route POST /api/pull"},
  };
  for (const Case& c : cases) {
    HttpReply reply = Send(port_, c.method, c.path, c.body);
    EXPECT_EQ(reply.status, c.status) << c.path << " " << c.body << " -> " << reply.body;
    EXPECT_EQ(reply.Json(), json({{"error", c.message}})) << c.path << " " << c.body;
  }
}

}  // namespace
}  // namespace kiln::server::testing
