// Bad requests get OpenAI's error body with the status and a message naming the field; the API
// key; a server that is still loading.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>
#include <filesystem>

#include "server_fixture.h"

namespace kiln::server::testing {
namespace {

struct BadRequest {
  const char* path;
  std::string body;
  int status;
  std::string message;
};

const std::string kUser = R"("messages":[{"role":"user","content":"hi"}])";

TEST_F(ServerTest, BadRequestsGetTheirStatusAndMessage) {
  const std::vector<BadRequest> cases = {
      {"/v1/chat/completions", "{", 400, "the request body is not valid JSON"},
      {"/v1/chat/completions", "[]", 400, "the request body must be a JSON object, got []"},
      {"/v1/chat/completions", "{}", 400, "'messages' must be a non-empty list of messages"},
      {"/v1/chat/completions", R"({"messages":"hi"})", 400, "'messages' must be a non-empty list of messages"},
      {"/v1/chat/completions", R"({"messages":[{"role":"robot","content":"x"}]})", 400,
       "'messages[0].role' must be system, user, assistant or tool, got \"robot\""},
      {"/v1/chat/completions", R"({"messages":[{"role":"user"}]})", 400, "'messages[0].content' is missing"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", 400,
       "'messages[0].content[0]' must be {\"type\": \"text\", \"text\": string}, got {\"type\":\"image_url\"}"},
      {"/v1/chat/completions", "{" + kUser + R"(,"max_tokens":0})", 400, "'max_tokens' must be an integer in [1, 512], got 0"},
      {"/v1/chat/completions", "{" + kUser + R"(,"max_tokens":513})", 400, "'max_tokens' must be an integer in [1, 512], got 513"},
      {"/v1/chat/completions", "{" + kUser + R"(,"max_completion_tokens":"5"})", 400,
       "'max_completion_tokens' must be an integer in [1, 512], got \"5\""},
      {"/v1/chat/completions", "{" + kUser + R"(,"temperature":3})", 400, "'temperature' must be in [0.0, 2.0], got 3"},
      {"/v1/chat/completions", "{" + kUser + R"(,"temperature":"hot"})", 400,
       "'temperature' must be a number in [0.0, 2.0], got \"hot\""},
      {"/v1/chat/completions", "{" + kUser + R"(,"top_p":0})", 400, "'top_p' must be in (0.0, 1.0], got 0"},
      {"/v1/chat/completions", "{" + kUser + R"(,"top_k":-1})", 400, "'top_k' must be an integer in [0, 1073741824], got -1"},
      {"/v1/chat/completions", "{" + kUser + R"(,"presence_penalty":2.5})", 400, "'presence_penalty' must be in [-2.0, 2.0], got 2.5"},
      {"/v1/chat/completions", "{" + kUser + R"(,"frequency_penalty":-3})", 400, "'frequency_penalty' must be in [-2.0, 2.0], got -3"},
      {"/v1/completions", R"({"prompt":"x","frequency_penalty":"high"})", 400,
       "'frequency_penalty' must be a number in [-2.0, 2.0], got \"high\""},
      {"/v1/chat/completions", "{" + kUser + R"(,"repetition_penalty":0})", 400, "'repetition_penalty' must be in (0.0, 2.0], got 0"},
      {"/v1/chat/completions", "{" + kUser + R"(,"repeat_last_n":-2})", 400, "'repeat_last_n' must be an integer in [-1, 512], got -2"},
      {"/v1/chat/completions", "{" + kUser + R"(,"n":2})", 400, "'n' must be 1 (one choice per request), got 2"},
      {"/v1/chat/completions", "{" + kUser + R"(,"stop":5})", 400, "'stop' must be a string or a list of at most 16 strings, got 5"},
      {"/v1/chat/completions", "{" + kUser + R"(,"stream":"yes"})", 400, "'stream' must be a boolean, got \"yes\""},
      {"/v1/chat/completions", "{" + kUser + R"(,"response_format":{"type":"xml"}})", 400,
       "'response_format.type' must be text, json_object or json_schema, got \"xml\""},
      {"/v1/chat/completions", "{" + kUser + R"(,"response_format":{"type":"json_schema","json_schema":{}}})", 400,
       "'response_format.json_schema.schema' must be a JSON Schema object"},
      {"/v1/chat/completions", "{" + kUser + R"(,"logprobs":true,"top_logprobs":21})", 400,
       "'top_logprobs' must be an integer in [0, 20], got 21"},
      {"/v1/completions", "{}", 400, "'prompt' must be a non-empty string"},
      {"/v1/completions", R"({"prompt":7})", 400, "'prompt' must be a non-empty string"},
      {"/v1/chat/completions", "{" + kUser + R"(,"model":"gpt-4"})", 404,
       "the model 'gpt-4' does not exist; this server serves 'brown-gemma4'"},
      {"/tokenize", R"({"content":5})", 400, "'content' must be a string"},
      {"/detokenize", R"({"tokens":[1,-2]})", 400, "'tokens' must be a list of token ids (non-negative integers)"},
      {"/detokenize", R"({"tokens":[999999999]})", 400, "token id 999999999 is outside the vocabulary [0, 8192)"},
  };
  for (const BadRequest& c : cases) {
    HttpReply reply = Send(port_, "POST", c.path, c.body);
    EXPECT_EQ(reply.status, c.status) << c.body << " -> " << reply.body;
    json body = reply.Json();
    EXPECT_EQ(body["error"]["message"], c.message) << c.body;
    EXPECT_EQ(body["error"]["type"], "invalid_request_error") << c.body;
  }
}

TEST_F(ServerTest, InvalidJsonSchemaIs400) {
  HttpReply reply = Send(port_, "POST", "/v1/chat/completions",
                         "{" + kUser + R"(,"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"frobnicate"}}}})");
  EXPECT_EQ(reply.status, 400) << reply.body;
  EXPECT_EQ(reply.Json()["error"]["type"], "invalid_request_error");
}

TEST_F(ServerTest, PromptOverTheContextIs400) {
  std::string prompt;
  for (int i = 0; i < 600; ++i) prompt += "jury ";
  Result<std::vector<int32_t>> ids = oracle_->Tokenize(prompt);
  ASSERT_TRUE(ids.has_value());
  HttpReply reply = Post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 4}});
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.Json()["error"]["message"], "the prompt has " + std::to_string(ids->size()) +
                                                  " tokens, more than the context of 512 tokens; raise --ctx or shorten the prompt");
}

TEST_F(ServerTest, BodyOverTheLimitIs413) {
  const std::string body = R"({"prompt":")" + std::string(9 << 20, 'a') + R"("})";
  HttpReply reply = Send(port_, "POST", "/v1/completions", body);
  EXPECT_EQ(reply.status, 413);
  EXPECT_EQ(reply.Json()["error"]["message"], "the request body is larger than the limit of 8388608 bytes");
  EXPECT_EQ(reply.Json()["error"]["code"], "request_too_large");
}

TEST_F(ServerTest, UnknownRouteIs404) {
  HttpReply reply = Get("/v1/nothing");
  EXPECT_EQ(reply.status, 404);
  EXPECT_EQ(reply.Json()["error"]["message"], "no route GET /v1/nothing");
}

TEST(ServerAuthTest, ApiKeyIsRequiredExceptForHealth) {
  auto model = Model::Load(kModelDir, TestModelOptions());
  ASSERT_TRUE(model.has_value());
  Server server(LocalOptions(0, "sekrit"));
  auto port = server.Start();
  ASSERT_TRUE(port.has_value());
  server.SetModel(std::move(*model), "brown-gemma4");
  EXPECT_EQ(Send(*port, "GET", "/health").status, 200);
  for (const httplib::Headers& headers : {httplib::Headers{}, httplib::Headers{{"Authorization", "Bearer wrong"}}}) {
    HttpReply reply = Send(*port, "GET", "/v1/models", "", headers);
    EXPECT_EQ(reply.status, 401);
    EXPECT_EQ(reply.Json()["error"]["type"], "authentication_error");
    EXPECT_EQ(reply.Json()["error"]["message"], "missing or wrong API key: send the header 'Authorization: Bearer KEY'");
  }
  EXPECT_EQ(Send(*port, "GET", "/v1/models", "", {{"Authorization", "Bearer sekrit"}}).status, 200);
  EXPECT_EQ(Send(*port, "POST", "/v1/completions", R"({"prompt":"The","max_tokens":2})", {{"Authorization", "Bearer sekrit"}}).status,
            200);
}

TEST(ServerLoadingTest, HealthIs503UntilTheModelIsSet) {
  Server server(LocalOptions());
  auto port = server.Start();
  ASSERT_TRUE(port.has_value());
  HttpReply health = Send(*port, "GET", "/health");
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.Json(), json::parse(R"({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})"));
  EXPECT_EQ(Send(*port, "GET", "/v1/models").status, 503);
  EXPECT_EQ(Send(*port, "POST", "/v1/completions", R"({"prompt":"x"})").status, 503);
  auto model = Model::Load(kModelDir, TestModelOptions());
  ASSERT_TRUE(model.has_value());
  server.SetModel(std::move(*model), "brown-gemma4");
  EXPECT_EQ(Send(*port, "GET", "/health").status, 200);
}

TEST(ServerStartTest, PortInUseIsAnError) {
  Server first(LocalOptions());
  auto port = first.Start();
  ASSERT_TRUE(port.has_value());
  Server second(LocalOptions(*port));
  auto again = second.Start();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), ErrorCode::kIo);
}

// The system's cpp-httplib listens with a backlog of 5; 32 clients connecting at once overflowed
// it, and each dropped connection waited a TCP retransmission (a second) before its request
// reached the model (bench/RESULTS.md, "The 32-client gap"). The server listens again with
// SOMAXCONN: read the backlog of its listening socket back from the kernel (TCP_INFO reports a
// listener's maximum accept queue as tcpi_sacked).
TEST(ServerStartTest, ListensWithABacklogForBurstsOfClients) {
  Server server(LocalOptions());
  auto port = server.Start();
  ASSERT_TRUE(port.has_value());
  int listener = -1;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::atoi(entry.path().filename().c_str());
    int accepting = 0;
    socklen_t length = sizeof(accepting);
    sockaddr_in address{};
    socklen_t address_length = sizeof(address);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0 && accepting &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) == 0 && address.sin_family == AF_INET &&
        ntohs(address.sin_port) == *port) {
      listener = fd;
    }
  }
  ASSERT_GE(listener, 0) << "no listening socket on port " << *port;
  tcp_info info{};
  socklen_t length = sizeof(info);
  ASSERT_EQ(getsockopt(listener, IPPROTO_TCP, TCP_INFO, &info, &length), 0);
  EXPECT_GE(info.tcpi_sacked, 128u) << "the accept queue holds " << info.tcpi_sacked << " connections";
}

}  // namespace
}  // namespace kiln::server::testing
