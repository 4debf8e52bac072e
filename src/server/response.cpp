#include "server/response.h"

namespace kiln::server {
namespace {

using nlohmann::json;

// Dumps without throwing on invalid UTF-8 (a token may end mid-character; the replacement
// character stands in for the broken bytes).
std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

json Bytes(const std::string& text) {
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

json Base(const ResponseHeader& header, const char* object) {
  return json{{"id", header.id}, {"object", object}, {"created", header.created}, {"model", header.model}};
}

}  // namespace

std::string FinishReason(const std::string& stop_reason) {
  if (stop_reason == "eos" || stop_reason == "stop_string") return "stop";
  if (stop_reason == "max_tokens" || stop_reason == "context_full") return "length";
  return stop_reason;
}

json Usage(const Completion& completion) {
  const int64_t generated = static_cast<int64_t>(completion.tokens.size());
  return json{{"prompt_tokens", completion.prompt_tokens},
              {"completion_tokens", generated},
              {"total_tokens", completion.prompt_tokens + generated},
              {"prompt_tokens_details", {{"cached_tokens", completion.cached_tokens}}}};
}

json Logprobs(Endpoint endpoint, const std::vector<TokenLogprobs>& tokens) {
  if (endpoint == Endpoint::kChat) {
    json content = json::array();
    for (const TokenLogprobs& t : tokens) {
      json top = json::array();
      for (const auto& [text, logprob] : t.top) top.push_back({{"token", text}, {"logprob", logprob}, {"bytes", Bytes(text)}});
      content.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", Bytes(t.token)}, {"top_logprobs", top}});
    }
    return json{{"content", content}};
  }
  json texts = json::array(), logprobs = json::array(), tops = json::array(), offsets = json::array();
  int64_t offset = 0;
  for (const TokenLogprobs& t : tokens) {
    texts.push_back(t.token);
    logprobs.push_back(t.logprob);
    json top = json::object();
    for (const auto& [text, logprob] : t.top) top[text] = logprob;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += static_cast<int64_t>(t.token.size());
  }
  return json{{"tokens", texts}, {"token_logprobs", logprobs}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

std::string ToolCallId(const ResponseHeader& header, size_t index) {
  const size_t dash = header.id.find('-');
  return "call_" + (dash == std::string::npos ? header.id : header.id.substr(dash + 1)) + "_" + std::to_string(index);
}

std::string ChatFinishReason(const std::string& stop_reason, bool made_tool_calls) {
  const std::string reason = FinishReason(stop_reason);
  return made_tool_calls && reason == "stop" ? "tool_calls" : reason;
}

namespace {

json ToolCallsJson(const ResponseHeader& header, const std::vector<ParsedToolCall>& calls, size_t first_index, bool indexed) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json call = {{"id", ToolCallId(header, first_index + i)},
                 {"type", "function"},
                 {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (indexed) call["index"] = first_index + i;
    out.push_back(std::move(call));
  }
  return out;
}

}  // namespace

json ReplyChunk(const ResponseHeader& header, const ReplyDelta& delta, size_t first_tool_index, const json& logprobs) {
  json chunk = Chunk(header, delta.content, /*role=*/false, "", logprobs);
  json& message = chunk["choices"][0]["delta"];
  if (delta.content.empty() && (!delta.reasoning.empty() || !delta.tool_calls.empty())) message.erase("content");
  if (!delta.reasoning.empty()) {
    message["reasoning_content"] = delta.reasoning;
    message["reasoning"] = delta.reasoning;
  }
  if (!delta.tool_calls.empty()) message["tool_calls"] = ToolCallsJson(header, delta.tool_calls, first_tool_index, true);
  return chunk;
}

json FullResponse(const ResponseHeader& header, const Completion& completion, const json& logprobs, const ReplyDelta* reply) {
  json choice = {{"index", 0}};
  if (header.endpoint == Endpoint::kChat && reply) {
    json message = {{"role", "assistant"}, {"content", reply->content}};
    if (reply->content.empty() && !reply->tool_calls.empty()) message["content"] = nullptr;
    if (!reply->reasoning.empty()) {
      message["reasoning_content"] = reply->reasoning;
      message["reasoning"] = reply->reasoning;
    }
    if (!reply->tool_calls.empty()) message["tool_calls"] = ToolCallsJson(header, reply->tool_calls, 0, false);
    choice["message"] = std::move(message);
  } else if (header.endpoint == Endpoint::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", completion.text}};
  } else {
    choice["text"] = completion.text;
  }
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = reply ? ChatFinishReason(completion.stop_reason, !reply->tool_calls.empty())
                                  : FinishReason(completion.stop_reason);
  json body = Base(header, header.endpoint == Endpoint::kChat ? "chat.completion" : "text_completion");
  body["choices"] = json::array({choice});
  body["usage"] = Usage(completion);
  return body;
}

json Chunk(const ResponseHeader& header, const std::string& text, bool role, const std::string& finish_reason,
           const json& logprobs) {
  json choice = {{"index", 0}};
  if (header.endpoint == Endpoint::kChat) {
    json delta = json::object();
    if (role) delta["role"] = "assistant";
    // The finishing chunk has an empty delta; every other one carries content (maybe "").
    if (finish_reason.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason.empty() ? json(nullptr) : json(finish_reason);
  json body = Base(header, header.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion");
  body["choices"] = json::array({choice});
  return body;
}

json UsageChunk(const ResponseHeader& header, const Completion& completion) {
  json body = Base(header, header.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion");
  body["choices"] = json::array();
  body["usage"] = Usage(completion);
  return body;
}

std::string SseEvent(const json& body) { return "data: " + Dump(body) + "\n\n"; }

std::string ErrorBody(const std::string& message, const std::string& type, const std::string& code) {
  return Dump(json{{"error", {{"message", message}, {"type", type}, {"code", code.empty() ? json(nullptr) : json(code)}}}});
}

}  // namespace kiln::server
