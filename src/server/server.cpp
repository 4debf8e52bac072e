#include <sys/socket.h>

#include <chrono>
#include <csignal>
#include <ctime>
#include <sstream>
#include <tuple>

#include "server/server_impl.h"
#include "server/web_page.h"

namespace kiln::server {

using nlohmann::json;

void SendError(httplib::Response& response, int status, const std::string& message, const std::string& type,
               const json& code) {
  response.status = status;
  json body = {{"error", {{"message", message}, {"type", type}, {"code", code}}}};
  response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void SendStyledError(httplib::Response& response, ErrorStyle style, int status, const std::string& message, const std::string& type,
                     const json& code) {
  if (style == ErrorStyle::kOpenAi) return SendError(response, status, message, type, code);
  response.status = status;
  response.set_content(OllamaErrorBody(message), "application/json");
}

int StatusOf(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kInternal:
    case ErrorCode::kIo:
    case ErrorCode::kOutOfMemory:
    case ErrorCode::kDeviceUnavailable: return 500;
    default: return 400;
  }
}

void SendError(httplib::Response& response, const Error& error) {
  const int status = StatusOf(error);
  SendError(response, status, error.message(), status == 500 ? "server_error" : "invalid_request_error",
            status == 404 ? json("model_not_found") : json(nullptr));
}

namespace {

void SendJson(httplib::Response& response, const json& body) {
  response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// Parses a JSON object body for the small routes; false (and a 400 sent) when it is not one.
bool ParseBody(const httplib::Request& request, httplib::Response& response, json* out) {
  *out = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded() || !out->is_object()) {
    SendError(response, 400, "the request body must be a JSON object", "invalid_request_error");
    return false;
  }
  return true;
}

}  // namespace

void Server::Impl::Routes() {
  http.Get("/health", [this](const httplib::Request&, httplib::Response& response) {
    if (!ready) return SendError(response, 503, "Loading model", "unavailable_error", 503);
    SendJson(response, {{"status", "ok"}});
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& response) {
    SendJson(response, {{"object", "list"},
                        {"data", json::array({{{"id", model_name}, {"object", "model"}, {"created", created}, {"owned_by", "kiln"}}})}});
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& request, httplib::Response& response) {
    GenerationRoute(Endpoint::kChat, request, response);
  });
  http.Post("/v1/completions", [this](const httplib::Request& request, httplib::Response& response) {
    GenerationRoute(Endpoint::kCompletion, request, response);
  });
  http.Post("/tokenize", [this](const httplib::Request& request, httplib::Response& response) {
    json body;
    if (!ParseBody(request, response, &body)) return;
    auto content = body.find("content");
    if (content == body.end() || !content->is_string()) {
      return SendError(response, 400, "'content' must be a string", "invalid_request_error");
    }
    Result<std::vector<int32_t>> tokens = model->Tokenize(content->get<std::string>());
    if (!tokens.has_value()) return SendError(response, tokens.error());
    SendJson(response, {{"tokens", *tokens}});
  });
  http.Post("/detokenize", [this](const httplib::Request& request, httplib::Response& response) {
    json body;
    if (!ParseBody(request, response, &body)) return;
    auto tokens = body.find("tokens");
    std::vector<int32_t> ids;
    bool valid = tokens != body.end() && tokens->is_array();
    for (size_t i = 0; valid && i < tokens->size(); ++i) {
      const json& id = (*tokens)[i];
      valid = id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() <= INT32_MAX;
      if (valid) ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    if (!valid) return SendError(response, 400, "'tokens' must be a list of token ids (non-negative integers)", "invalid_request_error");
    Result<std::string> text = model->Detokenize(ids);
    if (!text.has_value()) return SendError(response, text.error());
    SendJson(response, {{"content", *text}});
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(Metrics(), "text/plain; version=0.0.4");
  });
  OllamaRoutes();
  AddWebPageRoutes(http);
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  Impl* impl = impl_.get();
  httplib::Server& http = impl->http;
  const size_t threads = static_cast<size_t>(std::max<int64_t>(1, impl->options.http_threads));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second server on the
  // same port binds without error and silently shares the traffic.
  http.set_socket_options([impl](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    impl->listen_socket = sock;
  });
  http.set_payload_max_length(static_cast<size_t>(impl->options.max_body_bytes));
  // Authentication, then "loading": before routing so that every route (and unknown ones) gets it.
  http.set_pre_routing_handler([impl](const httplib::Request& request, httplib::Response& response) {
    const ErrorStyle style = StyleOf(request.path);
    if (impl->draining) {
      SendStyledError(response, style, 503, "Shutting down", "unavailable_error", 503);
      return httplib::Server::HandlerResponse::Handled;
    }
    // CORS preflights carry no credentials: answered before the key is checked.
    if (request.method == "OPTIONS" && !impl->options.cors_origin.empty()) {
      const std::string asked = request.get_header_value("Access-Control-Request-Headers");
      response.status = 204;
      response.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      response.set_header("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type" : asked);
      response.set_header("Access-Control-Max-Age", "86400");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (request.path == "/health" || ((request.method == "GET" || request.method == "HEAD") && IsWebPagePath(request.path))) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string& key = impl->options.api_key;
    if (!key.empty() && request.get_header_value("Authorization") != "Bearer " + key) {
      SendStyledError(response, style, 401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                      "authentication_error", "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!impl->ready) {
      SendStyledError(response, style, 503, "Loading model", "unavailable_error", 503);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Every answer (errors and preflights too) names the allowed origin.
  if (!impl->options.cors_origin.empty()) {
    http.set_post_routing_handler([impl](const httplib::Request&, httplib::Response& response) {
      response.set_header("Access-Control-Allow-Origin", impl->options.cors_origin);
      if (impl->options.cors_origin != "*") response.set_header("Vary", "Origin");
    });
  }
  // Statuses httplib sets itself (404 no route, 413 body too large, 400 bad framing) get
  // OpenAI's error shape; the routes' own errors already have a body.
  httplib::Server::HandlerWithResponse on_error = [impl](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty() || response.status == 204) return httplib::Server::HandlerResponse::Unhandled;
    const ErrorStyle style = StyleOf(request.path);
    if (response.status == 404) {
      SendStyledError(response, style, 404, "no route " + request.method + " " + request.path, "invalid_request_error", "not_found");
    } else if (response.status == 413) {
      SendStyledError(response, style, 413,
                      "the request body is larger than the limit of " + std::to_string(impl->options.max_body_bytes) + " bytes",
                      "invalid_request_error", "request_too_large");
    } else {
      SendStyledError(response, style, response.status,
                      "the request could not be read (HTTP " + std::to_string(response.status) + ")", "invalid_request_error", nullptr);
    }
    return httplib::Server::HandlerResponse::Handled;
  };
  http.set_error_handler(std::move(on_error));
  impl->Routes();
}

Server::~Server() { Stop(); }

Result<int> Server::Start() {
  std::signal(SIGPIPE, SIG_IGN);
  Impl& impl = *impl_;
  const int port = impl.options.port == 0 ? impl.http.bind_to_any_port(impl.options.host)
                                          : (impl.http.bind_to_port(impl.options.host, impl.options.port) ? impl.options.port : -1);
  if (port < 0) {
    return Error(ErrorCode::kIo, "cannot listen on " + impl.options.host + ":" + std::to_string(impl.options.port) +
                                     " (address in use, or not an address of this machine)");
  }
  // The system's cpp-httplib listens with a backlog of 5 (compiled in): 32 clients connecting at
  // once overflowed the accept queue, and a dropped connection waits out a TCP retransmission
  // before its request reaches the model (kiln_serve_bench at 32 clients: 14 sequences a step
  // instead of 31; bench/RESULTS.md). Listening again on a listening socket changes its backlog.
  if (impl.listen_socket >= 0) listen(impl.listen_socket, SOMAXCONN);
  impl.listener = std::thread([&impl] { impl.http.listen_after_bind(); });
  impl.started = true;
  // httplib's stop() does nothing before the accept loop runs; wait for it so that a Stop right
  // after Start cannot leave the loop running forever.
  while (!impl.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

void Server::SetModel(std::unique_ptr<Model> model, const std::string& name) {
  Impl& impl = *impl_;
  const ModelInfo info = model->info();
  impl.limits.context = info.context;
  impl.limits.model_name = name;
  impl.limits.default_sampling = info.default_sampling;
  impl.limits.has_chat_template = info.has_chat_template;
  impl.model_name = name;
  impl.created = static_cast<int64_t>(std::time(nullptr));
  impl.loaded_unix_nanoseconds = UnixNanosecondsNow();
  impl.model = std::move(model);
  impl.ready = true;
}

void Server::Stop() {
  Impl& impl = *impl_;
  if (impl.started) {
    // httplib's stop() cuts streamed replies short, so first let every request in flight end
    // and every stream send its last event; requests that arrive meanwhile get 503.
    impl.draining = true;
    while (impl.counters.in_flight > 0 || impl.active_streams > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // stop() closes the listening socket; listen_after_bind returns once its worker threads
    // have answered the requests in flight.
    impl.http.stop();
    if (impl.listener.joinable()) impl.listener.join();
    impl.started = false;
  }
  impl.ready = false;
  impl.draining = false;
  impl.model.reset();
}

std::string Server::MetricsText() const { return impl_->Metrics(); }

std::string Server::Impl::Metrics() const {
  const Impl& impl = *this;
  ModelStats stats;
  if (impl.ready) stats = impl.model->stats();
  const Counters& c = impl.counters;
  std::ostringstream out;
  auto metric = [&out](const char* name, const char* type, const char* help, double value) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n' << name << ' ' << value << '\n';
  };
  metric("kiln_requests_total", "counter", "Finished generation requests.", static_cast<double>(c.requests));
  metric("kiln_requests_cancelled_total", "counter", "Requests cancelled (client disconnects).", static_cast<double>(c.cancelled));
  metric("kiln_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", static_cast<double>(c.prompt_tokens));
  metric("kiln_prompt_tokens_cached_total", "counter", "Prompt tokens taken from the prefix cache.", static_cast<double>(c.cached_tokens));
  metric("kiln_tokens_predicted_total", "counter", "Generated tokens.", static_cast<double>(c.generated_tokens));
  metric("kiln_prompt_seconds_total", "counter", "Seconds from submission until prompts were in.", c.prompt_microseconds / 1e6);
  metric("kiln_tokens_predicted_seconds_total", "counter", "Seconds spent generating.", c.generation_microseconds / 1e6);
  // Counted here, not from stats.running: the scheduler refreshes that only after a step, so it
  // stays stale when a cancellation empties the batch and no further step runs.
  const int64_t in_flight = c.in_flight;
  const int64_t waiting = std::min(in_flight, stats.waiting);
  metric("kiln_requests_processing", "gauge", "Requests running on the model now.", static_cast<double>(in_flight - waiting));
  metric("kiln_requests_waiting", "gauge", "Requests queued for the model.", static_cast<double>(waiting));
  metric("kiln_draft_tokens_total", "counter", "Speculative decoding: tokens drafted (finished requests).",
         static_cast<double>(stats.draft_tokens));
  metric("kiln_draft_tokens_accepted_total", "counter", "Speculative decoding: drafted tokens accepted.",
         static_cast<double>(stats.accepted_draft_tokens));
  metric("kiln_draft_prompt_tokens_cached_total", "counter", "Speculative decoding: prompt tokens a draft model took from its prefix cache.",
         static_cast<double>(stats.draft_cached_tokens));
  // Per draft position: how often a round drafted that far, and was accepted up to it.
  for (const auto& [name, counts, help] : {std::tuple{"kiln_draft_rounds_by_position_total", &stats.drafted_by_position,
                                                      "Speculative decoding: rounds that drafted a token at this position."},
                                           std::tuple{"kiln_draft_accepted_by_position_total", &stats.accepted_by_position,
                                                      "Speculative decoding: rounds whose drafts were accepted through this position."}}) {
    if (counts->empty()) continue;
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n";
    for (size_t i = 0; i < counts->size(); ++i) out << name << "{position=\"" << i + 1 << "\"} " << (*counts)[i] << '\n';
  }
  metric("kiln_steps_total", "counter", "Model steps run.", static_cast<double>(stats.steps));
  metric("kiln_prompt_steps_total", "counter", "Model steps that ran prompt tokens (a prefill, alone or beside decoding).",
         static_cast<double>(stats.prompt_steps));
  metric("kiln_step_sequences_total", "counter", "Sequences over all model steps (divided by kiln_steps_total: the mean batch).",
         static_cast<double>(stats.step_rows));
  return out.str();
}

}  // namespace kiln::server
