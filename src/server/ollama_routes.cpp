// Ollama's routes (ollama.h): /api/chat and /api/generate answered whole or as NDJSON (one JSON
// object a line, flushed as tokens arrive), /api/tags, /api/ps, /api/show, /api/version.
#include <deque>
#include <optional>

#include "server/json_fields.h"
#include "server/server_impl.h"

namespace kiln::server {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

void SendJson(httplib::Response& response, const json& body) { response.set_content(Dump(body), "application/json"); }

void SendOllamaError(httplib::Response& response, int status, const std::string& message) {
  SendStyledError(response, ErrorStyle::kOllama, status, message, "", nullptr);
}

// A streamed reply's state, shared by the content provider and its releaser.
struct NdjsonStream {
  Model* model = nullptr;
  RequestId id = 0;
  OllamaRoute route = OllamaRoute::kChat;
  std::string model_name;
  std::shared_ptr<RequestChannel> channel;
  std::optional<Gemma4OutputParser> parser;
  bool ended = false;
};

std::string Line(const json& body) { return Dump(body) + "\n"; }

}  // namespace

void Server::Impl::OllamaGenerationRoute(OllamaRoute route, const httplib::Request& request, httplib::Response& response) {
  Result<OllamaRequest> parsed = ParseOllamaRequest(route, request.body, limits);
  if (!parsed.has_value()) return SendOllamaError(response, StatusOf(parsed.error()), parsed.error().message());
  OllamaRequest ollama = std::move(*parsed);
  if (ollama.load_only) return SendJson(response, OllamaLoaded(route, model_name));
  ApiRequest& api = ollama.api;
  RequestId id = 0;
  std::shared_ptr<RequestChannel> channel = SubmitGeneration(std::move(api.generation), response, ErrorStyle::kOllama, &id);
  if (!channel) return;

  if (!api.stream) {
    std::deque<TokenEvent> tokens;
    std::optional<Completion> done;
    WaitForCompletion(*channel, request, id, &tokens, &done);
    if (done->error) return SendOllamaError(response, 500, done->error->message());
    ReplyDelta reply;
    if (api.parse_reply) {
      Gemma4OutputParser parser({.tool_calls = api.parse_tool_calls});
      reply = parser.Feed(done->text);
      reply.Append(parser.Finish());
    } else {
      reply.content = done->text;
    }
    return SendJson(response, OllamaDone(route, model_name, reply, *done));
  }

  auto stream = std::make_shared<NdjsonStream>();
  stream->model = model.get();
  stream->id = id;
  stream->route = route;
  stream->model_name = model_name;
  stream->channel = channel;
  if (api.parse_reply) stream->parser.emplace(ParserOptions{.tool_calls = api.parse_tool_calls});
  // One line per batch of tokens that arrived, then the done line with the counts.
  auto provider = [stream](size_t, httplib::DataSink& sink) {
    std::deque<TokenEvent> tokens;
    std::optional<Completion> done;
    if (!stream->channel->Take(&tokens, &done, milliseconds(500))) return sink.is_writable();
    std::string text;
    for (const TokenEvent& t : tokens) text += t.text;
    ReplyDelta delta;
    if (stream->parser) {
      delta = stream->parser->Feed(text);
      if (done) delta.Append(stream->parser->Finish());
    } else {
      delta.content = std::move(text);
    }
    std::string lines;
    if (!delta.empty()) lines += Line(OllamaPiece(stream->route, stream->model_name, delta));
    if (done) {
      stream->ended = true;
      lines += done->error ? Line(json{{"error", done->error->message()}})
                           : Line(OllamaDone(stream->route, stream->model_name, {}, *done));
    }
    if (!lines.empty() && !sink.write(lines.data(), lines.size())) return false;
    if (done) sink.done();
    return true;
  };
  auto release = [stream, this](bool) {
    if (!stream->ended) stream->model->Cancel(stream->id);
    active_streams -= 1;
  };
  active_streams += 1;
  response.set_chunked_content_provider("application/x-ndjson", std::move(provider), std::move(release));
}

void Server::Impl::OllamaRoutes() {
  http.Post("/api/chat", [this](const httplib::Request& request, httplib::Response& response) {
    OllamaGenerationRoute(OllamaRoute::kChat, request, response);
  });
  http.Post("/api/generate", [this](const httplib::Request& request, httplib::Response& response) {
    OllamaGenerationRoute(OllamaRoute::kGenerate, request, response);
  });
  http.Get("/api/tags", [this](const httplib::Request&, httplib::Response& response) {
    SendJson(response, {{"models", json::array({OllamaModelEntry(model->info(), model_name, loaded_unix_nanoseconds, false)})}});
  });
  http.Get("/api/ps", [this](const httplib::Request&, httplib::Response& response) {
    SendJson(response, {{"models", json::array({OllamaModelEntry(model->info(), model_name, loaded_unix_nanoseconds, true)})}});
  });
  http.Post("/api/show", [this](const httplib::Request& request, httplib::Response& response) {
    Result<json> body = ParseObject(request.body);
    if (!body.has_value()) return SendOllamaError(response, 400, body.error().message());
    if (Status known = CheckOllamaModel(*body, limits); !known.ok()) {
      return SendOllamaError(response, StatusOf(known.error()), known.error().message());
    }
    SendJson(response, OllamaShow(model->info(), model_name, loaded_unix_nanoseconds));
  });
  http.Get("/api/version", [](const httplib::Request&, httplib::Response& response) {
    SendJson(response, {{"version", kOllamaApiVersion}});
  });
}

}  // namespace kiln::server
