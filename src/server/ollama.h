// Ollama's native API (github.com/ollama/ollama, docs/api.md): request bodies parsed into the
// same ApiRequest the OpenAI routes run, and the JSON objects Ollama answers with. Pure
// functions: no model, no HTTP (the routes are in ollama_routes.cpp).
//
// Requests (POST /api/chat, /api/generate):
//   model       required; this server's name, with or without ":latest" (else kNotFound)
//   messages    /api/chat: the conversation (chat_request.h); "tools" as OpenAI's
//   prompt      /api/generate: the user's text; "system" before it; "raw": true skips the chat
//               template; "suffix" and "images" are refused (text in, text out only)
//   stream      default true: NDJSON, one object a line; false: one object
//   format      "json" (any JSON object) or a JSON Schema object
//   options     temperature, top_p, top_k, min_p, seed, num_predict (-1, -2: up to the context),
//               stop, repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty;
//               num_ctx and the other runner options are accepted and ignored (the context is
//               fixed when the server loads the model: --ctx)
//   think       true / false: the chat template's enable_thinking
//   keep_alive  accepted and ignored: the model stays loaded while the server runs
// An empty prompt (or no messages) only "loads" the model: the answer is done at once with
// done_reason "load", as Ollama's.
//
// Responses: every object has "model" and "created_at" (RFC 3339, UTC, nanoseconds) and "done".
// Durations are integers in nanoseconds. Errors are {"error": "message"}.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kiln/kiln.h"
#include "server/gemma4_output.h"
#include "server/request.h"

namespace kiln::server {

enum class OllamaRoute { kChat, kGenerate };

struct OllamaRequest {
  OllamaRoute route = OllamaRoute::kChat;
  ApiRequest api;          // stream defaults to true here
  bool load_only = false;  // no prompt: answer done_reason "load" without generating
};

Result<OllamaRequest> ParseOllamaRequest(OllamaRoute route, std::string_view body, const ApiLimits& limits);
// "model" of /api/show (or its older "name"): kNotFound unless it names the served model.
Status CheckOllamaModel(const nlohmann::json& body, const ApiLimits& limits);

// "2024-05-01T12:34:56.123456789Z" for a time in nanoseconds since the Unix epoch.
std::string Rfc3339(int64_t unix_nanoseconds);
int64_t UnixNanosecondsNow();

// Ollama's done_reason: "stop" for eos / stop strings, "length" for max_tokens / a full context.
std::string OllamaDoneReason(const std::string& stop_reason);

// A streamed piece (done: false) of a reply: message {role, content, thinking?, tool_calls?}
// for /api/chat, "response" (and "thinking") for /api/generate.
nlohmann::json OllamaPiece(OllamaRoute route, const std::string& model, const ReplyDelta& delta);
// The last object (done: true) with done_reason and the counts and durations; `reply` is the
// whole reply for an unstreamed answer and empty for the end of a stream.
nlohmann::json OllamaDone(OllamaRoute route, const std::string& model, const ReplyDelta& reply, const Completion& completion);
// The answer to a load_only request.
nlohmann::json OllamaLoaded(OllamaRoute route, const std::string& model);

// One entry of /api/tags ("models"), and with `running` the extra fields of /api/ps.
nlohmann::json OllamaModelEntry(const ModelInfo& info, const std::string& name, int64_t loaded_unix_nanoseconds, bool running);
// The body of /api/show.
nlohmann::json OllamaShow(const ModelInfo& info, const std::string& name, int64_t loaded_unix_nanoseconds);

// Ollama's error body.
std::string OllamaErrorBody(const std::string& message);

// What /api/version reports: the Ollama API version whose routes and shapes this server follows.
inline constexpr char kOllamaApiVersion[] = "0.9.0";

}  // namespace kiln::server
