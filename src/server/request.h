// OpenAI request bodies (/v1/chat/completions, /v1/completions) parsed and validated into an
// ApiRequest, whose GenerationRequest the model can run.
//
//   TRY_ASSIGN(ApiRequest request, ParseChatRequest(body, limits));
//
// Parsing never throws (nlohmann::json with allow_exceptions=false) and never trusts the input:
// every field is type-checked and range-checked, and every failure is an Error whose message
// names the field ("'temperature' must be a number in [0, 2], got \"hot\""). Error codes:
//   kInvalidArgument  malformed JSON, wrong types, bad values      (HTTP 400)
//   kNotFound         'model' names a model this server does not serve (HTTP 404)
// Unknown fields are ignored, as OpenAI's clients send many optional ones.
//
// Chat without a chat template: when the model has none (ApiLimits::has_chat_template false),
// the messages are rendered as plain text, their contents joined by "\n", and encoded like a
// /v1/completions prompt (with <bos>). The bundled test model has no template; this keeps
// /v1/chat/completions usable with it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kiln/kiln.h"
#include "kiln/status.h"

namespace kiln::server {

// Bounds a request must stay within.
struct ApiLimits {
  int64_t context = 4096;             // max_tokens may not exceed it
  int64_t max_messages = 4096;
  int64_t max_stop_strings = 16;
  int64_t max_top_logprobs = 20;
  std::string model_name;             // the one model served; other names are kNotFound
  SamplingParams default_sampling;    // the start when any sampling field is given
  bool has_chat_template = false;
};

struct ApiRequest {
  GenerationRequest generation;  // prompt or messages, sampling, stop, structured output
  bool stream = false;
  bool include_usage = false;    // stream_options.include_usage
  bool logprobs = false;         // report per-token log-probabilities
  int64_t top_logprobs = 0;      // alternatives per token in the response
  // Chat on a model with a chat template: the reply is Gemma 4 output, split into reasoning,
  // content and (with parse_tool_calls) tool calls (gemma4_output.h).
  bool parse_reply = false;
  bool parse_tool_calls = false;
};

// The sampling fields and "stop", shared with Ollama's "options" (the names the servers share:
// temperature, top_p, top_k, min_p, seed, repetition_penalty / repeat_penalty, repeat_last_n,
// presence_penalty, frequency_penalty). Absent fields keep the model's defaults; any given field
// starts from those and overrides.
Status ParseSamplingFields(const nlohmann::json& object, const ApiLimits& limits, GenerationRequest* generation);

Result<ApiRequest> ParseChatRequest(std::string_view body, const ApiLimits& limits);
Result<ApiRequest> ParseCompletionRequest(std::string_view body, const ApiLimits& limits);

}  // namespace kiln::server
