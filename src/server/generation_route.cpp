// POST /v1/chat/completions and /v1/completions: parse, submit to the model, answer whole or
// as a stream of SSE chunks.
#include <ctime>
#include <deque>
#include <optional>

#include "server/gemma4_output.h"
#include "server/request_channel.h"
#include "server/json_fields.h"
#include "server/connection_watch.h"
#include "server/server_impl.h"

namespace kiln::server {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// A streamed request's state, shared by the content provider and its releaser.
struct Stream {
  Model* model = nullptr;
  RequestId id = 0;
  ResponseHeader header;
  std::shared_ptr<RequestChannel> channel;
  bool include_usage = false, logprobs = false;
  bool sent_role = false;  // the first event went out
  bool ended = false;      // the last event went out
  // Chat on a templated model: the reply split into reasoning, content and tool calls.
  std::optional<Gemma4OutputParser> parser;
  size_t tool_calls_sent = 0;
  std::chrono::steady_clock::time_point last_write;
  std::chrono::milliseconds keepalive{0};
};

TokenLogprobs LogprobsOf(const Model& model, const TokenEvent& token, int64_t top) {
  auto text = [&model](int32_t id) {
    Result<std::string> piece = model.Detokenize(std::span<const int32_t>(&id, 1));
    return piece.has_value() ? *piece : std::string();
  };
  TokenLogprobs out;
  out.token = token.id >= 0 ? text(token.id) : token.text;
  out.logprob = token.logprob;
  for (int64_t i = 0; i < top && i < static_cast<int64_t>(token.top_logprobs.size()); ++i) {
    out.top.emplace_back(text(token.top_logprobs[i].first), token.top_logprobs[i].second);
  }
  return out;
}

// Writes one SSE event; false when the client is gone.
bool Write(httplib::DataSink& sink, const std::string& event) { return sink.write(event.data(), event.size()); }

// With include_usage, OpenAI sends "usage": null in every chunk before the usage chunk.
std::string Event(const Stream& stream, json chunk) {
  if (stream.include_usage) chunk["usage"] = nullptr;
  return SseEvent(chunk);
}

}  // namespace

std::shared_ptr<RequestChannel> Server::Impl::SubmitGeneration(GenerationRequest generation, httplib::Response& response,
                                                               ErrorStyle style, RequestId* id) {
  auto channel = std::make_shared<RequestChannel>();
  generation.on_token = [channel](const TokenEvent& token) { channel->PushToken(token); };
  generation.on_done = [channel, this](const Completion& completion) {
    counters.Add(completion);
    channel->Finish(completion);
  };
  // The model's queue is unbounded; the server bounds it so that an overloaded server answers at
  // once and the client can retry, rather than every request waiting longer.
  if (counters.in_flight.fetch_add(1) >= options.max_in_flight) {
    counters.in_flight -= 1;
    response.set_header("Retry-After", "1");
    SendStyledError(response, style, 503,
                    "the server is busy: " + std::to_string(options.max_in_flight) + " requests are running or queued; retry later",
                    "unavailable_error", 503);
    return nullptr;
  }
  Result<RequestId> submitted = model->Submit(std::move(generation));
  if (!submitted.has_value()) {
    counters.in_flight -= 1;
    const int status = StatusOf(submitted.error());
    SendStyledError(response, style, status, submitted.error().message(), status == 500 ? "server_error" : "invalid_request_error",
                    nullptr);
    return nullptr;
  }
  *id = *submitted;
  return channel;
}

void Server::Impl::WaitForCompletion(RequestChannel& channel, const httplib::Request& request, RequestId id, std::deque<TokenEvent>* tokens,
                                     std::optional<Completion>* done) {
  const ConnectionWatch watch = ConnectionWatch::Of(request);
  bool cancelled = false;
  while (!*done) {
    channel.Take(tokens, done, milliseconds(watch.watching() ? 200 : 1000));
    if (!*done && !cancelled && watch.Closed()) {
      model->Cancel(id);
      cancelled = true;
    }
  }
}

void Server::Impl::GenerationRoute(Endpoint endpoint, const httplib::Request& request, httplib::Response& response) {
  Result<ApiRequest> parsed =
      endpoint == Endpoint::kChat ? ParseChatRequest(request.body, limits) : ParseCompletionRequest(request.body, limits);
  if (!parsed.has_value()) return SendError(response, parsed.error());
  ApiRequest api = std::move(*parsed);
  const int64_t top = api.top_logprobs;
  // One alternative at least, so that each token's own log-probability is reported.
  api.generation.top_logprobs = api.logprobs ? std::max<int64_t>(1, top) : 0;

  RequestId id = 0;
  std::shared_ptr<RequestChannel> channel = SubmitGeneration(std::move(api.generation), response, ErrorStyle::kOpenAi, &id);
  if (!channel) return;

  ResponseHeader header;
  header.endpoint = endpoint;
  header.id = std::string(endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-") + std::to_string(created) + "-" +
              std::to_string(next_response.fetch_add(1));
  header.created = static_cast<int64_t>(std::time(nullptr));
  header.model = model_name;

  if (!api.stream) {
    std::deque<TokenEvent> tokens;
    std::optional<Completion> done;
    WaitForCompletion(*channel, request, id, &tokens, &done);
    if (done->error) return SendError(response, 500, done->error->message(), "server_error");
    json logprobs = nullptr;
    if (api.logprobs) {
      std::vector<TokenLogprobs> entries;
      for (const TokenEvent& t : tokens) {
        if (t.id >= 0) entries.push_back(LogprobsOf(*model, t, top));
      }
      logprobs = Logprobs(endpoint, entries);
    }
    std::optional<ReplyDelta> reply;
    if (api.parse_reply) {
      Gemma4OutputParser parser({.tool_calls = api.parse_tool_calls});
      reply = parser.Feed(done->text);
      reply->Append(parser.Finish());
    }
    response.set_content(Dump(FullResponse(header, *done, logprobs, reply ? &*reply : nullptr)), "application/json");
    return;
  }

  auto stream = std::make_shared<Stream>();
  stream->model = model.get();
  stream->id = id;
  stream->header = header;
  stream->channel = channel;
  stream->include_usage = api.include_usage;
  stream->logprobs = api.logprobs;
  if (api.parse_reply) stream->parser.emplace(ParserOptions{.tool_calls = api.parse_tool_calls});
  stream->keepalive = milliseconds(options.sse_keepalive_ms);
  stream->last_write = std::chrono::steady_clock::now();
  response.set_header("Cache-Control", "no-cache");
  // The first event carries the role (chat) and no text; the provider then sends one event per
  // batch of tokens that arrived, the finishing chunk, the usage chunk and [DONE].
  auto provider = [stream, top](size_t, httplib::DataSink& sink) {
    if (!stream->sent_role) {
      stream->sent_role = true;
      if (!Write(sink, Event(*stream, Chunk(stream->header, "", /*role=*/true, "", nullptr)))) return false;
    }
    std::deque<TokenEvent> tokens;
    std::optional<Completion> done;
    if (!stream->channel->Take(&tokens, &done, milliseconds(100))) {
      // Waiting (queued, or a long prefill): a comment line keeps proxies from timing out.
      const auto now = std::chrono::steady_clock::now();
      if (stream->keepalive.count() > 0 && now - stream->last_write >= stream->keepalive) {
        stream->last_write = now;
        return Write(sink, ": ping\n\n");
      }
      return sink.is_writable();
    }
    std::string text;
    std::vector<TokenLogprobs> entries;
    for (const TokenEvent& t : tokens) {
      text += t.text;
      if (stream->logprobs && t.id >= 0) entries.push_back(LogprobsOf(*stream->model, t, top));
    }
    const json logprobs = stream->logprobs ? Logprobs(stream->header.endpoint, entries) : json(nullptr);
    if (stream->parser) {
      ReplyDelta delta = stream->parser->Feed(text);
      if (done) delta.Append(stream->parser->Finish());
      if (!delta.empty() || !entries.empty()) {
        const size_t first = stream->tool_calls_sent;
        stream->tool_calls_sent += delta.tool_calls.size();
        if (!Write(sink, Event(*stream, ReplyChunk(stream->header, delta, first, logprobs)))) return false;
        stream->last_write = std::chrono::steady_clock::now();
      }
    } else if (!text.empty() || !entries.empty()) {
      if (!Write(sink, Event(*stream, Chunk(stream->header, text, /*role=*/false, "", logprobs)))) return false;
      stream->last_write = std::chrono::steady_clock::now();
    }
    if (!done) return true;
    stream->ended = true;
    const std::string reason = done->error     ? "error"
                               : stream->parser ? ChatFinishReason(done->stop_reason, stream->tool_calls_sent > 0)
                                                : FinishReason(done->stop_reason);
    std::string tail = Event(*stream, Chunk(stream->header, "", /*role=*/false, reason, nullptr));
    if (stream->include_usage) tail += SseEvent(UsageChunk(stream->header, *done));
    tail += kSseDone;
    if (!Write(sink, tail)) return false;
    sink.done();
    return true;
  };
  // Called once the stream is over; a request still running then lost its client.
  auto release = [stream, this](bool) {
    if (!stream->ended) stream->model->Cancel(stream->id);
    active_streams -= 1;
  };
  active_streams += 1;
  response.set_chunked_content_provider("text/event-stream", std::move(provider), std::move(release));
}

}  // namespace kiln::server
