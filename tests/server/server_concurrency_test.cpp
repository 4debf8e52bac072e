// Many clients at once get exactly their solo outputs (and, under the bounded load test, lose or
// duplicate no token); a client that disconnects mid-stream has its request cancelled.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_fixture.h"

namespace kiln::server::testing {
namespace {

// The value of one metric line ("NAME VALUE") in the Prometheus text; -1 when absent.
double Metric(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

// The metrics once one more request than `cancelled_before` was cancelled and none runs (or
// after 10 s, for the test to report).
std::string MetricsOnceCancelled(Server& server, double cancelled_before) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string metrics;
  while (std::chrono::steady_clock::now() < deadline) {
    metrics = server.MetricsText();
    if (Metric(metrics, "kiln_requests_cancelled_total") == cancelled_before + 1 && Metric(metrics, "kiln_requests_processing") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return metrics;
}

TEST_F(ServerTest, DisconnectMidStreamCancels) {
  const double cancelled_before = Metric(server_->MetricsText(), "kiln_requests_cancelled_total");
  httplib::Client client("127.0.0.1", port_);
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/completions";
  request.set_header("Content-Type", "application/json");
  // ignore_eos: without a disconnect this request runs for all 500 tokens (seconds).
  request.body = json({{"prompt", "The jury"}, {"max_tokens", 500}, {"temperature", 0}, {"stream", true}, {"ignore_eos", true}}).dump();
  size_t received = 0;
  request.content_receiver = [&received](const char*, size_t size, uint64_t, uint64_t) {
    received += size;
    return received < 2000;  // a few chunks, then hang up
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  client.send(request, response, error);
  EXPECT_GE(received, 2000u);
  const std::string metrics = MetricsOnceCancelled(*server_, cancelled_before);
  EXPECT_EQ(Metric(metrics, "kiln_requests_cancelled_total"), cancelled_before + 1) << metrics;
  EXPECT_EQ(Metric(metrics, "kiln_requests_processing"), 0) << metrics;
  EXPECT_EQ(Metric(metrics, "kiln_requests_waiting"), 0) << metrics;
}

// Sends `body` to `path` on a raw connection, waits `wait`, then hangs up without reading.
void PostAndHangUp(int port, const std::string& path, const std::string& body, std::chrono::milliseconds wait) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  const std::string message = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(send(fd, message.data(), message.size(), 0), static_cast<ssize_t>(message.size()));
  std::this_thread::sleep_for(wait);
  close(fd);
}

// Unstreamed replies are written only at the end; a client that hangs up before has its request
// cancelled all the same (OpenAI and Ollama routes), and the server keeps serving.
TEST_F(ServerTest, DisconnectBeforeAnUnstreamedReplyCancels) {
  const std::pair<const char*, json> requests[] = {
      {"/v1/completions", {{"prompt", "The jury"}, {"max_tokens", 480}, {"temperature", 0}, {"ignore_eos", true}}},
      {"/v1/chat/completions",
       {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 480}, {"temperature", 0}, {"ignore_eos", true}}},
      // Ollama has no ignore_eos: a string of at least 5000 characters cannot end within 480 tokens.
      {"/api/generate",
       {{"model", "brown-gemma4"}, {"prompt", "The jury"}, {"stream", false}, {"format", {{"type", "string"}, {"minLength", 5000}}},
        {"options", {{"num_predict", 480}, {"temperature", 0}}}}}};
  for (const auto& [path, body] : requests) {
    SCOPED_TRACE(path);
    const std::string before = server_->MetricsText();
    const double cancelled_before = Metric(before, "kiln_requests_cancelled_total");
    const double tokens_before = Metric(before, "kiln_tokens_predicted_total");
    PostAndHangUp(port_, path, body.dump(), std::chrono::milliseconds(300));
    const std::string metrics = MetricsOnceCancelled(*server_, cancelled_before);
    EXPECT_EQ(Metric(metrics, "kiln_requests_cancelled_total"), cancelled_before + 1) << metrics;
    EXPECT_EQ(Metric(metrics, "kiln_requests_processing"), 0) << metrics;
    // Cut short: fewer than the 480 tokens asked for (the context holds 512).
    EXPECT_LT(Metric(metrics, "kiln_tokens_predicted_total") - tokens_before, 400) << metrics;
  }
  EXPECT_EQ(Post("/v1/completions", {{"prompt", "The jury"}, {"max_tokens", 4}}).status, 200);
}

// 16 clients x 4 requests (half streamed) at temperature 0: each reply equals the same prompt's
// reply when it ran alone.
TEST_F(ServerTest, ConcurrentClientsGetTheirSoloOutputs) {
  const std::vector<std::string> prompts = {"The jury", "In the morning", "She said that", "The city of",
                                            "He was not", "It is a", "The man who", "They went to"};
  std::vector<std::string> solo;
  for (const std::string& prompt : prompts) {
    json body = Post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}}).Json();
    solo.push_back(body["choices"][0]["text"]);
  }
  constexpr int kClients = 16, kRequests = 4;
  std::vector<std::string> got(kClients * kRequests);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int r = 0; r < kRequests; ++r) {
        const int slot = c * kRequests + r;
        const bool stream = (c + r) % 2 == 1;
        HttpReply reply = Post("/v1/completions", {{"prompt", prompts[slot % prompts.size()]}, {"max_tokens", 12},
                                                   {"temperature", 0}, {"stream", stream}});
        if (reply.status != 200) {
          got[slot] = "HTTP " + std::to_string(reply.status) + " " + reply.body;
        } else if (!stream) {
          got[slot] = reply.Json()["choices"][0]["text"];
        } else {
          SseStream sse = ParseSse(reply.body);
          if (!sse.error.empty()) got[slot] = "SSE: " + sse.error;
          for (const json& chunk : sse.events) got[slot] += chunk["choices"][0]["text"].get<std::string>();
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  for (size_t slot = 0; slot < got.size(); ++slot) EXPECT_EQ(got[slot], solo[slot % prompts.size()]) << "request " << slot;
}

// What one request of the load test asked and got.
struct LoadReply {
  std::string text;            // content (chat) or text (completions), streamed chunks joined
  int64_t tokens = -1;         // usage.completion_tokens (streamed: from the include_usage chunk)
  std::string error;           // empty when the reply was whole
  double seconds = 0;          // request sent -> reply complete
};

LoadReply LoadRequest(int port, bool chat, const std::string& prompt, bool stream) {
  json body = {{"max_tokens", 8}, {"temperature", 0}, {"stream", stream}};
  if (chat) body["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
  else body["prompt"] = prompt;
  if (stream) body["stream_options"] = {{"include_usage", true}};
  const auto start = std::chrono::steady_clock::now();
  HttpReply reply = Send(port, "POST", chat ? "/v1/chat/completions" : "/v1/completions", body.dump());
  LoadReply out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (reply.status != 200) {
    out.error = "HTTP " + std::to_string(reply.status) + " " + reply.body;
    return out;
  }
  auto usage = [&out](const json& chunk) {
    if (chunk.contains("usage") && chunk["usage"].is_object()) out.tokens = chunk["usage"]["completion_tokens"].get<int64_t>();
  };
  if (!stream) {
    const json whole = reply.Json();
    const json& choice = whole["choices"][0];
    out.text = chat ? choice["message"]["content"].get<std::string>() : choice["text"].get<std::string>();
    usage(whole);
    return out;
  }
  SseStream sse = ParseSse(reply.body);
  if (!sse.error.empty()) out.error = "SSE: " + sse.error;
  for (const json& chunk : sse.events) {
    usage(chunk);
    if (chunk["choices"].empty()) continue;  // the usage chunk
    const json& choice = chunk["choices"][0];
    if (!chat) out.text += choice["text"].get<std::string>();
    else if (choice["delta"].contains("content") && choice["delta"]["content"].is_string()) out.text += choice["delta"]["content"].get<std::string>();
  }
  return out;
}

// The bounded load test: 32 clients x 20 requests on loopback, chat and completions, every other
// one streamed, at temperature 0. No request fails, and each reply equals its prompt's
// non-streamed twin (asked first, alone) in text and token count, so no token was lost or
// duplicated under load. Prints the latency percentiles.
TEST_F(ServerTest, ThirtyTwoClientsByTwentyRequestsLoseNothing) {
  constexpr int kClients = 32, kRequests = 20, kPrompts = 12;
  auto prompt = [](int i) { return "Story " + std::to_string(i) + ": the jury said that"; };
  // Twins: every (prompt, endpoint) once, not streamed, before the load.
  std::vector<LoadReply> twins;
  for (int i = 0; i < 2 * kPrompts; ++i) {
    twins.push_back(LoadRequest(port_, i % 2 == 1, prompt(i / 2), false));
    ASSERT_TRUE(twins.back().error.empty()) << twins.back().error;
    ASSERT_GT(twins.back().tokens, 0);
  }
  std::vector<LoadReply> got(kClients * kRequests);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int r = 0; r < kRequests; ++r) {
        const int slot = c * kRequests + r, twin = (c * 7 + r) % (2 * kPrompts);
        got[slot] = LoadRequest(port_, twin % 2 == 1, prompt(twin / 2), (c + r) % 2 == 1);
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> latencies;
  for (int c = 0; c < kClients; ++c) {
    for (int r = 0; r < kRequests; ++r) {
      const int slot = c * kRequests + r, twin = (c * 7 + r) % (2 * kPrompts);
      const bool streamed = (c + r) % 2 == 1;
      SCOPED_TRACE("client " + std::to_string(c) + " request " + std::to_string(r) + (streamed ? " (streamed)" : ""));
      EXPECT_EQ(got[slot].error, "");
      EXPECT_EQ(got[slot].text, twins[twin].text);
      EXPECT_EQ(got[slot].tokens, twins[twin].tokens);
      latencies.push_back(got[slot].seconds);
    }
  }
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&latencies](double p) { return latencies[static_cast<size_t>(p * static_cast<double>(latencies.size() - 1))]; };
  std::printf("[ load     ] %d clients x %d requests (8 tokens each, half streamed) in %.2f s: %.1f requests/s; latency p50 %.0f ms, "
              "p99 %.0f ms, max %.0f ms\n",
              kClients, kRequests, seconds, kClients * kRequests / seconds, 1e3 * percentile(0.5), 1e3 * percentile(0.99),
              1e3 * latencies.back());
}

TEST(ServerBusyTest, OverTheInFlightLimitIs503WithRetryAfter) {
  auto model = Model::Load(kModelDir, TestModelOptions());
  ASSERT_TRUE(model.has_value());
  ServerOptions options = LocalOptions();
  options.max_in_flight = 1;
  Server server(options);
  auto port = server.Start();
  ASSERT_TRUE(port.has_value());
  server.SetModel(std::move(*model), "brown-gemma4");
  std::thread busy([&] {
    Send(*port, "POST", "/v1/completions", R"({"prompt":"The jury","max_tokens":500,"ignore_eos":true,"stream":true})");
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Metric(server.MetricsText(), "kiln_requests_processing") < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  httplib::Client client("127.0.0.1", *port);
  httplib::Result second = client.Post("/v1/completions", R"({"prompt":"x","max_tokens":2})", "application/json");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 503);
  EXPECT_EQ(second->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(second->body)["error"]["message"], "the server is busy: 1 requests are running or queued; retry later");
  busy.join();
  // Once the first is done, the next one runs.
  EXPECT_EQ(Send(*port, "POST", "/v1/completions", R"({"prompt":"x","max_tokens":2})").status, 200);
}

TEST(ServerStopTest, StopLetsAStreamInFlightFinish) {
  auto model = Model::Load(kModelDir, TestModelOptions());
  ASSERT_TRUE(model.has_value());
  Server server(LocalOptions());
  auto port = server.Start();
  ASSERT_TRUE(port.has_value());
  server.SetModel(std::move(*model), "brown-gemma4");
  HttpReply reply;
  std::thread client([&] {
    reply = Send(*port, "POST", "/v1/completions",
                 R"({"prompt":"The jury","max_tokens":200,"ignore_eos":true,"stream":true,"temperature":0})");
  });
  // Stop once the request runs (the metrics show it), then the stream must still end whole.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Metric(server.MetricsText(), "kiln_requests_processing") < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  server.Stop();
  client.join();
  ASSERT_EQ(reply.status, 200);
  SseStream sse = ParseSse(reply.body);
  EXPECT_EQ(sse.error, "");
  EXPECT_TRUE(sse.done);
  ASSERT_FALSE(sse.events.empty());
  EXPECT_EQ(sse.events.back()["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(Send(*port, "GET", "/health").status, 0);  // no longer listening
}

}  // namespace
}  // namespace kiln::server::testing
