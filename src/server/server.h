// kiln's OpenAI-compatible HTTP server over one kiln::Model.
//
//   kiln::server::Server server({.host = "127.0.0.1", .port = 0});
//   TRY_ASSIGN(int port, server.Start());         // listening; /health answers 503 "Loading model"
//   TRY_ASSIGN(auto model, kiln::Model::Load(path, options));
//   server.SetModel(std::move(model), "brown-gemma4");   // /health 200, every route live
//   ...
//   server.Stop();                                 // stop accepting, finish in-flight requests
//
// Routes (docs in README "Serving"):
//   GET  /health                 200 {"status":"ok"}; 503 while loading; public with an API key
//   GET  /v1/models              the one model
//   POST /v1/chat/completions    OpenAI chat, streamed (SSE) or not
//   POST /v1/completions         OpenAI text completion, streamed or not
//   POST /tokenize, /detokenize  {"content"} <-> {"tokens"}
//   GET  /metrics                Prometheus text
//   POST /api/chat, /api/generate  Ollama's native API, NDJSON streams (ollama.h)
//   GET  /api/tags, /api/ps, /api/version; POST /api/show
// Every error is OpenAI's {"error": {"message", "type", "code"}} (under /api/, Ollama's
// {"error": "message"}): 400 bad input, 401 missing or
// wrong "Authorization: Bearer KEY", 404 unknown route or model, 413 body over max_body_bytes,
// 503 loading or busy (max_in_flight generations already running or queued; with a
// Retry-After header). Bad input never gives a 500; a 500 means the model failed while running.
//
// Threads: HTTP requests run on a pool of `http_threads`; each generation is submitted to the
// model (which batches them) and its tokens come back through a RequestChannel. A client that
// goes away has its request cancelled: a streamed one when a write fails, an unstreamed one when
// its socket (found by ConnectionWatch, since the system's cpp-httplib 0.11 shows a handler no
// socket) reports a hang-up.
//
// Stop (also the destructor): new requests get 503 "Shutting down", the requests in flight
// (streamed ones too) finish and are answered, the listening socket closes, then the model is
// destroyed. Start ignores SIGPIPE for the whole process: the
// system's cpp-httplib writes without MSG_NOSIGNAL, and a client that disconnects mid-stream
// must not kill the server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kiln/kiln.h"
#include "kiln/status.h"

namespace kiln::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                      // 0: an ephemeral port (Start returns it)
  std::string api_key;                  // empty: no authentication
  int64_t http_threads = 64;            // concurrent HTTP connections served
  int64_t max_body_bytes = 8 << 20;     // larger bodies get 413
  int64_t max_in_flight = 256;          // generations running + queued; beyond: 503, Retry-After
  // A streamed (SSE) reply that has sent nothing for this long (queued, or in a long prefill)
  // sends a ": ping" comment line; 0: never.
  int64_t sse_keepalive_ms = 5000;
  // Browsers on this origin ("*": any) may call the API: every answer carries
  // Access-Control-Allow-Origin, and OPTIONS preflights are answered (without the API key).
  // Empty: no CORS headers.
  std::string cors_origin;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts serving on a background thread; returns the port. kIo when the address
  // cannot be bound.
  Result<int> Start();
  // The model is loaded: routes answer from now on. `name`: the id of /v1/models and the only
  // "model" requests may name.
  void SetModel(std::unique_ptr<Model> model, const std::string& name);
  // Refuses new requests, waits for those in flight, stops listening, destroys the model.
  // Idempotent.
  void Stop();

  // The Prometheus text of GET /metrics.
  std::string MetricsText() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::server
