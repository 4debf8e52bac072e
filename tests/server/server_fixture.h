// A kiln::server::Server on 127.0.0.1 (an ephemeral port) over the bundled model, shared by the
// tests of one binary, with an httplib client for it and a second Model as the oracle of what
// the server must answer.
#pragma once

#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kiln/kiln.h"
#include "server/server.h"

namespace kiln::server::testing {

using nlohmann::json;

inline constexpr char kModelDir[] = KILN_SOURCE_DIR "/models/brown-gemma4";
inline constexpr int64_t kContext = 512;

inline ModelOptions TestModelOptions() {
  ModelOptions options;
  options.context = kContext;
  options.chunk = 256;
  options.parallel = 8;
  options.threads = 2;
  return options;
}

// 127.0.0.1 on `port` (0: an ephemeral one).
inline ServerOptions LocalOptions(int port = 0, const std::string& api_key = "") {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.api_key = api_key;
  return options;
}

struct HttpReply {
  int status = 0;  // 0: no answer (connection failed)
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
};

inline HttpReply Send(int port, const std::string& method, const std::string& path, const std::string& body = "",
                      const httplib::Headers& headers = {}) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  httplib::Result result = method == "GET" ? client.Get(path.c_str(), headers)
                                           : client.Post(path.c_str(), headers, body, "application/json");
  if (!result) return {};
  return {result->status, result->body};
}

// One SSE stream split into its events. `error` says what broke the framing, if anything.
struct SseStream {
  std::vector<json> events;  // every "data: {...}" before [DONE]
  bool done = false;         // "data: [DONE]" came, last
  std::string error;
};

inline SseStream ParseSse(const std::string& body) {
  SseStream out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) {
      out.error = "an event without its blank line: " + body.substr(pos);
      return out;
    }
    const std::string event = body.substr(pos, end - pos);
    pos = end + 2;
    if (event.rfind(": ", 0) == 0 && event.find('\n') == std::string::npos) continue;  // a keep-alive comment
    if (event.rfind("data: ", 0) != 0 || event.find('\n') != std::string::npos) {
      out.error = "not one 'data: ' line: " + event;
      return out;
    }
    const std::string payload = event.substr(6);
    if (payload == "[DONE]") {
      out.done = true;
      if (pos != body.size()) out.error = "events after [DONE]";
      return out;
    }
    json parsed = json::parse(payload, nullptr, false);
    if (parsed.is_discarded()) {
      out.error = "not JSON: " + payload;
      return out;
    }
    out.events.push_back(parsed);
  }
  out.error = "no [DONE]";
  return out;
}

// Starts `*server` with `options` and gives it the bundled model as "brown-gemma4"; `*port` is
// the port it listens on. For a test suite's SetUpTestSuite (fatal failures return early).
inline void StartBundledServer(const ServerOptions& options, Server** server, int* port) {
  *server = new Server(options);
  auto started = (*server)->Start();
  ASSERT_TRUE(started.has_value()) << started.error().message();
  *port = *started;
  auto model = Model::Load(kModelDir, TestModelOptions());
  ASSERT_TRUE(model.has_value()) << model.error().message();
  (*server)->SetModel(std::move(*model), "brown-gemma4");
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto oracle = Model::Load(kModelDir, TestModelOptions());
    ASSERT_TRUE(oracle.has_value()) << oracle.error().message();
    oracle_ = std::move(*oracle).release();
    StartBundledServer(LocalOptions(), &server_, &port_);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete oracle_;
    server_ = nullptr;
    oracle_ = nullptr;
  }

  static HttpReply Get(const std::string& path) { return Send(port_, "GET", path); }
  static HttpReply Post(const std::string& path, const json& body) { return Send(port_, "POST", path, body.dump()); }

  // What Model::Generate gives for a text prompt at temperature 0 (the model's other defaults,
  // its repetition penalty among them, as the server applies them).
  static Completion Oracle(const std::string& prompt, int64_t max_tokens) {
    GenerationRequest request;
    request.prompt = prompt;
    request.max_tokens = max_tokens;
    request.sampling = oracle_->info().default_sampling;
    request.sampling->temperature = 0;
    Result<Completion> done = oracle_->Generate(request);
    EXPECT_TRUE(done.has_value()) << done.error().message();
    return done.has_value() ? *done : Completion{};
  }

  static inline Model* oracle_ = nullptr;
  static inline Server* server_ = nullptr;
  static inline int port_ = 0;
};

}  // namespace kiln::server::testing
