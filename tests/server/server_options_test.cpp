// Server options beyond the defaults: CORS for browsers, and SSE keep-alive comments while a
// streamed request waits in the queue.
#include <thread>

#include "server_fixture.h"

namespace kiln::server::testing {
namespace {

class ServerOptionsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerOptions options = LocalOptions(0, "secret");
    options.cors_origin = "https://app.example";
    options.sse_keepalive_ms = 1;  // every wait without an event sends a ping
    server_ = new Server(options);
    auto port = server_->Start();
    ASSERT_TRUE(port.has_value());
    port_ = *port;
    ModelOptions model_options = TestModelOptions();
    model_options.parallel = 1;  // one sequence: a second request waits in the queue
    auto model = Model::Load(kModelDir, model_options);
    ASSERT_TRUE(model.has_value()) << model.error().message();
    server_->SetModel(std::move(*model), "brown-gemma4");
  }
  static void TearDownTestSuite() { delete server_; }

  static inline Server* server_ = nullptr;
  static inline int port_ = 0;
};

const httplib::Headers kKey = {{"Authorization", "Bearer secret"}};

TEST_F(ServerOptionsTest, PreflightIsAnsweredWithoutTheKey) {
  httplib::Client client("127.0.0.1", port_);
  auto preflight = client.Options("/v1/chat/completions", {{"Origin", "https://app.example"},
                                                           {"Access-Control-Request-Method", "POST"},
                                                           {"Access-Control-Request-Headers", "authorization, content-type"}});
  ASSERT_TRUE(preflight);
  EXPECT_EQ(preflight->status, 204);
  EXPECT_EQ(preflight->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(preflight->get_header_value("Access-Control-Allow-Methods"), "GET, POST, OPTIONS");
  EXPECT_EQ(preflight->get_header_value("Access-Control-Allow-Headers"), "authorization, content-type");
  EXPECT_EQ(preflight->body, "");
}

TEST_F(ServerOptionsTest, EveryAnswerNamesTheOrigin) {
  httplib::Client client("127.0.0.1", port_);
  auto models = client.Get("/v1/models", kKey);
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
  EXPECT_EQ(models->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  auto refused = client.Get("/v1/models");  // no key: 401, still readable by the page
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  EXPECT_EQ(refused->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
}

TEST_F(ServerOptionsTest, QueuedStreamSendsPings) {
  // The first request holds the only sequence for a while; the second, streamed, waits behind it.
  std::thread first([] {
    Send(port_, "POST", "/v1/completions",
         json({{"prompt", "The jury"}, {"max_tokens", 200}, {"temperature", 0}, {"ignore_eos", true}}).dump(), kKey);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  HttpReply second = Send(port_, "POST", "/v1/completions",
                          json({{"prompt", "The jury"}, {"max_tokens", 4}, {"temperature", 0}, {"stream", true}}).dump(), kKey);
  first.join();
  ASSERT_EQ(second.status, 200);
  EXPECT_NE(second.body.find(": ping\n\n"), std::string::npos) << second.body.substr(0, 400);
  // The pings are comments: the events around them are intact.
  SseStream sse = ParseSse(second.body);
  EXPECT_EQ(sse.error, "");
  EXPECT_TRUE(sse.done);
}

}  // namespace
}  // namespace kiln::server::testing
