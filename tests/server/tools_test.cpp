// Tools and reasoning: the bundled model given Gemma 4's chat template (a copy of its directory
// with chat_template.jinja from the tokenizer goldens), so that tools, tool calls, tool results
// and thinking switches go through the template; tool_choice "required" and named functions
// constrain the reply to Gemma 4's call syntax, which comes back as OpenAI tool_calls.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/chat_request.h"
#include "server/response.h"
#include "server_fixture.h"
#include "tokenizer/chat_template.h"

namespace kiln::server::testing {
namespace {

namespace fs = std::filesystem;

const json kWeather = {{"type", "function"},
                       {"function",
                        {{"name", "get_weather"},
                         {"description", "The weather of a city"},
                         {"parameters",
                          {{"type", "object"},
                           {"properties", {{"city", {{"type", "string"}, {"enum", {"Paris", "Oslo"}}}}, {"days", {{"type", "integer"}}}}},
                           {"required", {"city"}}}}}}};
const json kTime = {{"type", "function"}, {"function", {{"name", "get_time"}, {"description", "The time now"}}}};
const json kAsk = json::array({{{"role", "user"}, {"content", "What is the weather in Paris?"}}});

std::string Gemma4Template() {
  std::ifstream in(KILN_SOURCE_DIR "/tests/tokenizer/goldens/chat_templates.json");
  return json::parse(in)["templates"]["gemma4"].get<std::string>();
}

class TemplatedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("kiln-templated-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    for (const auto& entry : fs::directory_iterator(kModelDir)) fs::create_symlink(entry.path(), dir_ / entry.path().filename());
    std::ofstream(dir_ / "chat_template.jinja") << Gemma4Template();
    auto oracle = Model::Load(dir_.string(), TestModelOptions());
    ASSERT_TRUE(oracle.has_value()) << oracle.error().message();
    oracle_ = std::move(*oracle).release();
    ASSERT_TRUE(oracle_->info().has_chat_template);
    server_ = new Server(LocalOptions());
    auto port = server_->Start();
    ASSERT_TRUE(port.has_value());
    port_ = *port;
    auto model = Model::Load(dir_.string(), TestModelOptions());
    ASSERT_TRUE(model.has_value());
    server_->SetModel(std::move(*model), "brown-gemma4");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete oracle_;
    fs::remove_all(dir_);
  }
  static HttpReply Post(const std::string& path, const json& body) { return Send(port_, "POST", path, body.dump()); }

  // How many tokens the server's prompt must have: the template rendered by itself, encoded.
  static int64_t RenderedTokens(const json& messages, const json& tools, const json& extra = json::object()) {
    auto chat_template = tokenizer::ChatTemplate::Parse(Gemma4Template(), "<bos>", "<eos>");
    EXPECT_TRUE(chat_template.has_value());
    tokenizer::ChatRequest request;
    request.messages = nlohmann::ordered_json::parse(messages.dump());
    if (!tools.is_null()) request.tools = nlohmann::ordered_json::parse(tools.dump());
    request.extra_context = nlohmann::ordered_json::parse(extra.dump());
    auto rendered = chat_template->Render(request);
    EXPECT_TRUE(rendered.has_value());
    rendered_ = *rendered;
    auto ids = oracle_->Tokenize(*rendered);
    EXPECT_TRUE(ids.has_value());
    // Tokenize adds <bos> before the template's own: the chat prompt has one.
    EXPECT_EQ((*ids)[0], 2);
    EXPECT_EQ((*ids)[1], 2);
    return static_cast<int64_t>(ids->size()) - 1;
  }

  static inline fs::path dir_;
  static inline Model* oracle_ = nullptr;
  static inline Server* server_ = nullptr;
  static inline int port_ = 0;
  static inline std::string rendered_;
};

void ExpectOneCall(const json& message, const std::string& name) {
  ASSERT_TRUE(message["tool_calls"].is_array()) << message.dump();
  ASSERT_EQ(message["tool_calls"].size(), 1u) << message.dump();
  const json& call = message["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u) << call["id"];
  EXPECT_EQ(call["function"]["name"], name);
  ASSERT_TRUE(call["function"]["arguments"].is_string());
  EXPECT_TRUE(json::parse(call["function"]["arguments"].get<std::string>(), nullptr, false).is_object()) << call["function"]["arguments"];
}

TEST_F(TemplatedServerTest, RequiredToolChoiceGivesOneToolCall) {
  HttpReply reply = Post("/v1/chat/completions", {{"messages", kAsk}, {"tools", {kWeather, kTime}}, {"tool_choice", "required"},
                                                  {"temperature", 0}, {"max_tokens", 300}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  json body = reply.Json();
  const json& message = body["choices"][0]["message"];
  ASSERT_EQ(body["choices"][0]["finish_reason"], "tool_calls") << body.dump();
  EXPECT_TRUE(message["content"].is_null());
  ASSERT_EQ(message["tool_calls"].size(), 1u);
  const std::string name = message["tool_calls"][0]["function"]["name"];
  EXPECT_TRUE(name == "get_weather" || name == "get_time") << name;
  ExpectOneCall(message, name);
  // The tools were in the prompt: the template rendered them.
  EXPECT_EQ(body["usage"]["prompt_tokens"], RenderedTokens(kAsk, json::array({kWeather, kTime})));
  EXPECT_NE(rendered_.find("<|tool>declaration:get_weather{"), std::string::npos) << rendered_;
}

TEST_F(TemplatedServerTest, NamedToolChoiceStreamsTheCallAsDeltas) {
  const json request = {{"messages", kAsk},     {"tools", {kWeather, kTime}}, {"temperature", 0}, {"max_tokens", 300},
                        {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}};
  json whole = Post("/v1/chat/completions", request).Json();
  ExpectOneCall(whole["choices"][0]["message"], "get_time");
  json streamed = request;
  streamed["stream"] = true;
  SseStream sse = ParseSse(Post("/v1/chat/completions", streamed).body);
  ASSERT_EQ(sse.error, "");
  json calls = json::array();
  std::string finish;
  for (const json& chunk : sse.events) {
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("tool_calls")) {
      for (const json& call : delta["tool_calls"]) calls.push_back(call);
    }
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(finish, "tool_calls");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[0]["function"], whole["choices"][0]["message"]["tool_calls"][0]["function"]);
}

TEST_F(TemplatedServerTest, ToolHistoryGoesThroughTheTemplate) {
  // OpenAI's shape: arguments as text, the result answering by id.
  const json messages = json::array({kAsk[0],
                                     {{"role", "assistant"},
                                      {"content", nullptr},
                                      {"tool_calls", {{{"id", "call_1"}, {"type", "function"},
                                                       {"function", {{"name", "get_weather"}, {"arguments", R"({"city":"Paris"})"}}}}}}},
                                     {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}}});
  json body = Post("/v1/chat/completions", {{"messages", messages}, {"tools", {kWeather}}, {"temperature", 0}, {"max_tokens", 1}}).Json();
  // What the template makes of it with the arguments as an object.
  json templated = messages;
  templated[1]["tool_calls"][0]["function"]["arguments"] = {{"city", "Paris"}};
  EXPECT_EQ(body["usage"]["prompt_tokens"], RenderedTokens(templated, json::array({kWeather}))) << body.dump();
  EXPECT_NE(rendered_.find("<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>}<tool_call|>"), std::string::npos) << rendered_;
  EXPECT_NE(rendered_.find("<|tool_response>response:get_weather{value:<|\"|>sunny<|\"|>}<tool_response|>"), std::string::npos);
}

TEST_F(TemplatedServerTest, ToolChoiceNoneLeavesToolsOut) {
  json body = Post("/v1/chat/completions", {{"messages", kAsk}, {"tools", {kWeather}}, {"tool_choice", "none"}, {"max_tokens", 1}}).Json();
  EXPECT_EQ(body["usage"]["prompt_tokens"], RenderedTokens(kAsk, nullptr));
}

TEST_F(TemplatedServerTest, ThinkingSwitchesReachTheTemplate) {
  const int64_t thinking = RenderedTokens(kAsk, nullptr, {{"enable_thinking", true}});
  EXPECT_NE(rendered_.find("<|think|>"), std::string::npos);
  const int64_t plain = RenderedTokens(kAsk, nullptr);
  json effort = Post("/v1/chat/completions", {{"messages", kAsk}, {"reasoning_effort", "high"}, {"max_tokens", 1}}).Json();
  EXPECT_EQ(effort["usage"]["prompt_tokens"], thinking);
  json off = Post("/v1/chat/completions", {{"messages", kAsk}, {"chat_template_kwargs", {{"enable_thinking", false}}}, {"max_tokens", 1}}).Json();
  EXPECT_EQ(off["usage"]["prompt_tokens"], plain);
  json ollama = Post("/api/chat", {{"model", "brown-gemma4"}, {"messages", kAsk}, {"think", true}, {"stream", false},
                                   {"options", {{"num_predict", 1}}}})
                    .Json();
  EXPECT_EQ(ollama["prompt_eval_count"], thinking);
}

TEST_F(TemplatedServerTest, OllamaChatRendersTools) {
  json body = Post("/api/chat", {{"model", "brown-gemma4"}, {"messages", kAsk}, {"tools", {kWeather}}, {"stream", false},
                                 {"options", {{"num_predict", 1}}}})
                  .Json();
  EXPECT_EQ(body["prompt_eval_count"], RenderedTokens(kAsk, json::array({kWeather}))) << body.dump();
  json show = Post("/api/show", {{"model", "brown-gemma4"}}).Json();
  EXPECT_EQ(show["capabilities"], json::array({"completion", "tools"}));
}

TEST_F(TemplatedServerTest, BadToolRequestsAre400) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"messages", kAsk}, {"tools", {kWeather}}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}},
       "'tool_choice' names the function 'nope', which is not among 'tools'"},
      {{{"messages", kAsk}, {"tool_choice", "required"}}, "'tool_choice' \"required\" needs 'tools'"},
      {{{"messages", kAsk}, {"tool_choice", "sometimes"}, {"tools", {kWeather}}},
       "'tool_choice' must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\"}}, got \"sometimes\""},
      {{{"messages", kAsk}, {"tools", {{{"type", "function"}, {"function", {{"name", "bad name"}}}}}}},
       "'tools[0].function.name' must be a function name (letters, digits, _ - .), got \"bad name\""},
      {{{"messages", kAsk}, {"tools", {kWeather}}, {"tool_choice", "required"}, {"response_format", {{"type", "json_object"}}}},
       "'tool_choice' required cannot be combined with 'response_format'"},
      {{{"messages", json::array({{{"role", "assistant"}, {"tool_calls", {{{"function", {{"name", "f"}, {"arguments", "[1]"}}}}}}}})}},
       "'messages[0].tool_calls[0].function.arguments' must be a JSON object (or its text), got \"[1]\""},
      {{{"messages", kAsk}, {"reasoning_effort", "max"}}, "'reasoning_effort' must be none, minimal, low, medium or high, got \"max\""},
  };
  for (const auto& [request, message] : cases) {
    HttpReply reply = Post("/v1/chat/completions", request);
    EXPECT_EQ(reply.status, 400) << request.dump();
    EXPECT_EQ(reply.Json()["error"]["message"], message) << request.dump();
  }
}

// The grammar of a forced call follows each tool's parameters: property order, required and
// optional members, types and enums; a tool without parameters takes {}.
TEST(ToolCallGrammar, FollowsTheParameters) {
  Result<ToolSet> tools = ParseTools(json::array({kWeather, kTime}));
  ASSERT_TRUE(tools.has_value());
  const std::string grammar = ToolCallGrammar(*tools, {"get_weather", "get_time"});
  const std::string head = grammar.substr(0, grammar.find("members ::="));
  EXPECT_EQ(head,
            "root ::= \"<|tool_call>call:\" (\"get_weather\" tool0 | \"get_time\" tool1) \"<tool_call|>\"\n"
            "tool0 ::= \"{\" tool0f0 \"}\"\n"
            "tool0f0 ::= \"city:\" (\"<|\\\"|>\" \"Paris\" \"<|\\\"|>\" | \"<|\\\"|>\" \"Oslo\" \"<|\\\"|>\") tool0s1?\n"
            "tool0s0 ::= \",\" \"city:\" (\"<|\\\"|>\" \"Paris\" \"<|\\\"|>\" | \"<|\\\"|>\" \"Oslo\" \"<|\\\"|>\") tool0s1?\n"
            "tool0f1 ::= \"days:\" integer\n"
            "tool0s1 ::= \",\" \"days:\" integer\n"
            "tool1 ::= \"{}\"\n");
  // Only the allowed tool is offered.
  EXPECT_EQ(ToolCallGrammar(*tools, {"get_time"}).rfind("root ::= \"<|tool_call>call:\" (\"get_time\" tool1) \"<tool_call|>\"\n", 0), 0u);
}

// The response shapes of a split reply, exactly.
TEST(ReplyShapes, FullResponseAndChunkOfReasoningAndToolCalls) {
  const ResponseHeader header{Endpoint::kChat, "chatcmpl-7-3", 1700000000, "m"};
  ReplyDelta reply;
  reply.reasoning = "think";
  reply.tool_calls = {{"f", R"({"a":1})"}};
  Completion done;
  done.stop_reason = "eos";
  json full = FullResponse(header, done, nullptr, &reply);
  EXPECT_EQ(full["choices"][0]["message"],
            json::parse(R"({"role":"assistant","content":null,"reasoning_content":"think","reasoning":"think",
                            "tool_calls":[{"id":"call_7-3_0","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]})"));
  EXPECT_EQ(full["choices"][0]["finish_reason"], "tool_calls");
  done.stop_reason = "max_tokens";
  EXPECT_EQ(FullResponse(header, done, nullptr, &reply)["choices"][0]["finish_reason"], "length");
  json chunk = ReplyChunk(header, reply, /*first_tool_index=*/2, nullptr);
  EXPECT_EQ(chunk["choices"][0]["delta"],
            json::parse(R"({"reasoning_content":"think","reasoning":"think",
                            "tool_calls":[{"id":"call_7-3_2","type":"function","index":2,"function":{"name":"f","arguments":"{\"a\":1}"}}]})"));
  ReplyDelta text;
  text.content = "hi";
  EXPECT_EQ(ReplyChunk(header, text, 0, nullptr)["choices"][0]["delta"], json({{"content", "hi"}}));
}

}  // namespace
}  // namespace kiln::server::testing
