// OpenAI response bodies: chat.completion / text_completion objects, their streamed chunks
// (one SSE event each) and error bodies. Pure functions of their inputs: no model, no HTTP.
//
// Shapes (https://platform.openai.com/docs/api-reference):
//   non-streamed  {"id","object","created","model","choices":[{"index":0,"message"|"text",
//                  "logprobs","finish_reason"}],"usage":{...}}
//   chunk         {"id","object":"chat.completion.chunk","created","model",
//                  "choices":[{"index":0,"delta":{...},"logprobs","finish_reason":null}]}
//   error         {"error":{"message","type","code"}}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/kiln.h"
#include "server/gemma4_output.h"

namespace kiln::server {

enum class Endpoint { kChat, kCompletion };

// What every object of one completion shares.
struct ResponseHeader {
  Endpoint endpoint = Endpoint::kChat;
  std::string id;       // "chatcmpl-..." / "cmpl-...", one per completion
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// One generated token as the logprobs field reports it (its text and alternatives, decoded).
struct TokenLogprobs {
  std::string token;
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;  // most likely first
};

// "stop" for eos / stop_string, "length" for max_tokens / context_full, else the reason as is.
std::string FinishReason(const std::string& stop_reason);

nlohmann::json Usage(const Completion& completion);
// Chat: {"content": [{token, logprob, bytes, top_logprobs}]}; completions: the legacy
// {"tokens", "token_logprobs", "top_logprobs", "text_offset"}.
nlohmann::json Logprobs(Endpoint endpoint, const std::vector<TokenLogprobs>& tokens);

// `reply`: the chat reply split by Gemma4OutputParser (null: the text as content). The message
// then carries reasoning_content and reasoning (both names, as clients read either),
// tool_calls (content null when there is no text) and finish_reason "tool_calls".
nlohmann::json FullResponse(const ResponseHeader& header, const Completion& completion, const nlohmann::json& logprobs,
                            const ReplyDelta* reply = nullptr);

// "call_<completion>_<index>": unique per server, as OpenAI's tool call ids are.
std::string ToolCallId(const ResponseHeader& header, size_t index);
// finish_reason for a chat reply that made tool calls: "tool_calls" unless it was cut short.
std::string ChatFinishReason(const std::string& stop_reason, bool made_tool_calls);
// A streamed chat chunk of a split reply: delta {content?, reasoning_content?, reasoning?,
// tool_calls?: [{index, id, type, function: {name, arguments}}]}; the calls are numbered from
// `first_tool_index` (the calls streamed before).
nlohmann::json ReplyChunk(const ResponseHeader& header, const ReplyDelta& delta, size_t first_tool_index,
                          const nlohmann::json& logprobs);

// A streamed chunk with `text` as its delta (`role` adds "role": "assistant", chat only), and
// `finish_reason` (empty: null). `logprobs`: null or the chunk's logprobs object.
nlohmann::json Chunk(const ResponseHeader& header, const std::string& text, bool role, const std::string& finish_reason,
                     const nlohmann::json& logprobs);
// The usage chunk of stream_options.include_usage: "choices": [] and "usage".
nlohmann::json UsageChunk(const ResponseHeader& header, const Completion& completion);

// "data: <json>\n\n".
std::string SseEvent(const nlohmann::json& body);
inline constexpr char kSseDone[] = "data: [DONE]\n\n";

// {"error": {"message", "type", "code"}}; `code` is null when empty.
std::string ErrorBody(const std::string& message, const std::string& type, const std::string& code);

}  // namespace kiln::server
