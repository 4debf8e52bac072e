// Internal: the state the route files share. Not part of kiln_server's interface.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/ollama.h"
#include "server/request.h"
#include "server/request_channel.h"
#include "server/response.h"
#include "server/server.h"

namespace kiln::server {

// OpenAI's error body ({"error": {"message", "type", "code"}}) or Ollama's ({"error": "message"}),
// for the routes under /api/.
enum class ErrorStyle { kOpenAi, kOllama };
inline ErrorStyle StyleOf(const std::string& path) { return path.starts_with("/api/") ? ErrorStyle::kOllama : ErrorStyle::kOpenAi; }
// Counters over finished requests (what Model::stats() does not split out).
struct Counters {
  std::atomic<int64_t> requests{0}, cancelled{0}, prompt_tokens{0}, generated_tokens{0}, cached_tokens{0};
  std::atomic<int64_t> prompt_microseconds{0}, generation_microseconds{0};
  std::atomic<int64_t> in_flight{0};  // submitted, not yet done
  void Add(const Completion& c) {
    in_flight -= 1;
    requests += 1;
    if (c.stop_reason == "cancelled") cancelled += 1;
    prompt_tokens += c.prompt_tokens;
    generated_tokens += static_cast<int64_t>(c.tokens.size());
    cached_tokens += c.cached_tokens;
    prompt_microseconds += static_cast<int64_t>(c.prompt_seconds * 1e6);
    generation_microseconds += static_cast<int64_t>((c.first_token_seconds + c.generation_seconds) * 1e6);
  }
};

struct Server::Impl {
  ServerOptions options;
  httplib::Server http;
  std::thread listener;
  int listen_socket = -1;  // the socket httplib bound last (set_socket_options sees it first)
  bool started = false;
  // Written once by SetModel before `ready` is set; read only after `ready` is seen true.
  std::unique_ptr<Model> model;
  std::string model_name;
  int64_t created = 0;
  ApiLimits limits;
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};          // Stop began: new requests get 503
  std::atomic<int64_t> active_streams{0};     // streamed replies not yet over
  std::atomic<uint64_t> next_response{0};
  int64_t loaded_unix_nanoseconds = 0;        // when SetModel ran (Ollama's modified_at)
  Counters counters;

  void Routes();
  void OllamaRoutes();
  std::string Metrics() const;
  void GenerationRoute(Endpoint endpoint, const httplib::Request& request, httplib::Response& response);
  void OllamaGenerationRoute(OllamaRoute route, const httplib::Request& request, httplib::Response& response);
  // Submits `generation` (its callbacks are set here) within max_in_flight: its tokens and end
  // arrive through the returned channel. Null when refused; the error has then been sent.
  std::shared_ptr<RequestChannel> SubmitGeneration(GenerationRequest generation, httplib::Response& response, ErrorStyle style,
                                                   RequestId* id);
  // An unstreamed reply's wait: every token and then the completion of request `id` from
  // `channel`. A client that hangs up meanwhile (connection_watch.h) has the request cancelled, so
  // its sequence and KV blocks are freed at the next step; the completion still arrives.
  void WaitForCompletion(RequestChannel& channel, const httplib::Request& request, RequestId id, std::deque<TokenEvent>* tokens,
                         std::optional<Completion>* done);
};

// Sets OpenAI's or Ollama's error body and status.
void SendStyledError(httplib::Response& response, ErrorStyle style, int status, const std::string& message, const std::string& type,
                     const nlohmann::json& code);

// Sets an OpenAI error body and status. `code`: OpenAI's string code, or null.
void SendError(httplib::Response& response, int status, const std::string& message, const std::string& type,
               const nlohmann::json& code = nullptr);
// The HTTP status of an Error from parsing or Submit: 404 for kNotFound, 500 for kInternal and
// device failures, else 400.
int StatusOf(const Error& error);
void SendError(httplib::Response& response, const Error& error);

}  // namespace kiln::server
