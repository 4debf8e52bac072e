#include "server/request.h"

#include <nlohmann/json.hpp>

namespace kiln::server {
namespace {

using nlohmann::json;

Error Invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

// A short rendering of a bad value for messages (bounded: the value came from the client).
std::string Shown(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 64) text = text.substr(0, 61) + "...";
  return text;
}

Result<json> ParseObject(std::string_view body) {
  json root = json::parse(body.begin(), body.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Invalid("the request body is not valid JSON");
  if (!root.is_object()) return Invalid("the request body must be a JSON object, got " + Shown(root));
  return root;
}

// Looks up an optional field; null counts as absent (clients send "stop": null and the like).
const json* Field(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<bool> BoolField(const json& root, const char* name, bool fallback) {
  const json* value = Field(root, name);
  if (!value) return fallback;
  if (!value->is_boolean()) return Invalid(std::string("'") + name + "' must be a boolean, got " + Shown(*value));
  return value->get<bool>();
}

// An integer in [low, high]; a float with an integral value (e.g. 64.0) is refused like any float.
Result<int64_t> IntField(const json* value, const char* name, int64_t low, int64_t high) {
  if (!value->is_number_integer() || (value->is_number_unsigned() && value->get<uint64_t>() > static_cast<uint64_t>(high)) ||
      value->get<int64_t>() < low || value->get<int64_t>() > high) {
    return Invalid(std::string("'") + name + "' must be an integer in [" + std::to_string(low) + ", " +
                   std::to_string(high) + "], got " + Shown(*value));
  }
  return value->get<int64_t>();
}

Result<float> NumberField(const json* value, const char* name, double low, double high, bool low_open) {
  auto range = [&] {
    return std::string(low_open ? "(" : "[") + json(low).dump() + ", " + json(high).dump() + "]";
  };
  if (!value->is_number()) return Invalid(std::string("'") + name + "' must be a number in " + range() + ", got " + Shown(*value));
  const double number = value->get<double>();
  if (!(number <= high) || (low_open ? !(number > low) : !(number >= low))) {
    return Invalid(std::string("'") + name + "' must be in " + range() + ", got " + Shown(*value));
  }
  return static_cast<float>(number);
}

// The fields /v1/chat/completions and /v1/completions share.
Status ParseCommon(const json& root, const ApiLimits& limits, ApiRequest* out) {
  GenerationRequest& g = out->generation;
  if (const json* model = Field(root, "model")) {
    if (!model->is_string()) return Invalid("'model' must be a string, got " + Shown(*model));
    if (model->get<std::string>() != limits.model_name) {
      return Error(ErrorCode::kNotFound, "the model '" + model->get<std::string>() + "' does not exist; this server serves '" +
                                             limits.model_name + "'");
    }
  }
  // max_completion_tokens is the newer name; it wins when both are given.
  g.max_tokens = limits.context;
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (const json* value = Field(root, name)) {
      TRY_ASSIGN(g.max_tokens, IntField(value, name, 1, limits.context));
    }
  }
  // Sampling: absent fields keep the model's defaults (generation_config.json); any given field
  // starts from those defaults and overrides.
  SamplingParams sampling = limits.default_sampling;
  bool any_sampling = false;
  if (const json* v = Field(root, "temperature")) {
    TRY_ASSIGN(sampling.temperature, NumberField(v, "temperature", 0, 2, false));
    any_sampling = true;
  }
  if (const json* v = Field(root, "top_p")) {
    TRY_ASSIGN(sampling.top_p, NumberField(v, "top_p", 0, 1, true));
    any_sampling = true;
  }
  if (const json* v = Field(root, "min_p")) {
    TRY_ASSIGN(sampling.min_p, NumberField(v, "min_p", 0, 1, false));
    any_sampling = true;
  }
  // vLLM's name (llama-server: repeat_penalty); 1 = off.
  if (const json* v = Field(root, "repetition_penalty")) {
    TRY_ASSIGN(sampling.repetition_penalty, NumberField(v, "repetition_penalty", 0, 2, true));
    any_sampling = true;
  }
  if (const json* v = Field(root, "top_k")) {
    TRY_ASSIGN(sampling.top_k, IntField(v, "top_k", 0, 1 << 30));
    any_sampling = true;
  }
  if (const json* v = Field(root, "seed")) {
    // Negative seeds (some clients send -1) are taken modulo 2^64, as a uint64_t cast does.
    if (!v->is_number_integer()) return Invalid("'seed' must be an integer, got " + Shown(*v));
    sampling.seed = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
    any_sampling = true;
  }
  if (any_sampling) g.sampling = sampling;

  if (const json* stop = Field(root, "stop")) {
    if (stop->is_string()) {
      g.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array() && static_cast<int64_t>(stop->size()) <= limits.max_stop_strings) {
      for (const json& s : *stop) {
        if (!s.is_string()) return Invalid("'stop' must be a string or a list of strings, got " + Shown(*stop));
        g.stop.push_back(s.get<std::string>());
      }
    } else {
      return Invalid("'stop' must be a string or a list of at most " + std::to_string(limits.max_stop_strings) +
                     " strings, got " + Shown(*stop));
    }
    for (const std::string& s : g.stop) {
      if (s.empty()) return Invalid("'stop' strings must not be empty");
    }
  }
  if (const json* n = Field(root, "n")) {
    if (!n->is_number_integer() || n->get<int64_t>() != 1) return Invalid("'n' must be 1 (one choice per request), got " + Shown(*n));
  }
  // llama-server's extension: generate up to max_tokens even past the end-of-sequence token.
  TRY_ASSIGN(g.ignore_eos, BoolField(root, "ignore_eos", false));
  TRY_ASSIGN(out->stream, BoolField(root, "stream", false));
  if (const json* options = Field(root, "stream_options")) {
    if (!options->is_object()) return Invalid("'stream_options' must be an object, got " + Shown(*options));
    TRY_ASSIGN(out->include_usage, BoolField(*options, "include_usage", false));
  }
  if (const json* response_format = Field(root, "response_format")) {
    const json* type = response_format->is_object() ? Field(*response_format, "type") : nullptr;
    if (!type || !type->is_string()) {
      return Invalid("'response_format' must be an object with a 'type' of text, json_object or json_schema, got " +
                     Shown(*response_format));
    }
    const std::string kind = type->get<std::string>();
    if (kind == "json_object") {
      g.json_object = true;
    } else if (kind == "json_schema") {
      const json* spec = Field(*response_format, "json_schema");
      const json* schema = spec && spec->is_object() ? Field(*spec, "schema") : nullptr;
      if (!schema || !(schema->is_object() || schema->is_boolean())) {
        return Invalid("'response_format.json_schema.schema' must be a JSON Schema object");
      }
      g.json_schema = schema->dump(-1, ' ', false, json::error_handler_t::replace);
    } else if (kind != "text") {
      return Invalid("'response_format.type' must be text, json_object or json_schema, got " + Shown(*type));
    }
  }
  return Status::Ok();
}

// content: a string, or a list of {"type": "text", "text": ...} parts (joined without separator).
Result<std::string> MessageContent(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return std::string();
  if (!content.is_array()) return Invalid("'" + where + ".content' must be a string or a list of text parts, got " + Shown(content));
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const json* type = part.is_object() ? Field(part, "type") : nullptr;
    const json* part_text = part.is_object() ? Field(part, "text") : nullptr;
    if (!type || *type != "text" || !part_text || !part_text->is_string()) {
      return Invalid("'" + where + ".content[" + std::to_string(i) + "]' must be {\"type\": \"text\", \"text\": string}, got " +
                     Shown(part));
    }
    text += part_text->get<std::string>();
  }
  return text;
}

}  // namespace

Result<ApiRequest> ParseChatRequest(std::string_view body, const ApiLimits& limits) {
  TRY_ASSIGN(json root, ParseObject(body));
  ApiRequest out;
  const json* messages = Field(root, "messages");
  if (!messages || !messages->is_array() || messages->empty()) return Invalid("'messages' must be a non-empty list of messages");
  if (static_cast<int64_t>(messages->size()) > limits.max_messages) {
    return Invalid("'messages' has " + std::to_string(messages->size()) + " messages, more than the limit of " +
                   std::to_string(limits.max_messages));
  }
  std::vector<ChatMessage> parsed;
  for (size_t i = 0; i < messages->size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const json& message = (*messages)[i];
    if (!message.is_object()) return Invalid("'" + where + "' must be an object, got " + Shown(message));
    const json* role = Field(message, "role");
    if (!role || !role->is_string() || (*role != "system" && *role != "user" && *role != "assistant")) {
      return Invalid("'" + where + ".role' must be system, user or assistant, got " + (role ? Shown(*role) : "nothing"));
    }
    const json* content = Field(message, "content");
    if (!content) return Invalid("'" + where + ".content' is missing");
    TRY_ASSIGN(std::string text, MessageContent(*content, where));
    parsed.push_back({role->get<std::string>(), std::move(text)});
  }
  if (limits.has_chat_template) {
    out.generation.messages = std::move(parsed);
  } else {
    for (size_t i = 0; i < parsed.size(); ++i) out.generation.prompt += (i ? "\n" : "") + parsed[i].content;
    if (out.generation.prompt.empty()) return Invalid("'messages' have no text");
  }
  TRY(ParseCommon(root, limits, &out));
  TRY_ASSIGN(out.logprobs, BoolField(root, "logprobs", false));
  if (const json* top = Field(root, "top_logprobs")) {
    TRY_ASSIGN(out.top_logprobs, IntField(top, "top_logprobs", 0, limits.max_top_logprobs));
    if (!out.logprobs) return Invalid("'top_logprobs' needs 'logprobs': true");
  }
  return out;
}

Result<ApiRequest> ParseCompletionRequest(std::string_view body, const ApiLimits& limits) {
  TRY_ASSIGN(json root, ParseObject(body));
  ApiRequest out;
  const json* prompt = Field(root, "prompt");
  // A list holding one string is the same prompt (clients batch prompts that way; n=1 only).
  if (prompt && prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) prompt = &(*prompt)[0];
  if (!prompt || !prompt->is_string() || prompt->get_ref<const std::string&>().empty()) {
    return Invalid("'prompt' must be a non-empty string");
  }
  out.generation.prompt = prompt->get<std::string>();
  TRY(ParseCommon(root, limits, &out));
  // /v1/completions: logprobs is the number of alternatives per token (0..limit).
  if (const json* logprobs = Field(root, "logprobs")) {
    if (logprobs->is_boolean()) {
      out.logprobs = logprobs->get<bool>();
    } else {
      TRY_ASSIGN(out.top_logprobs, IntField(logprobs, "logprobs", 0, limits.max_top_logprobs));
      out.logprobs = true;
    }
  }
  return out;
}

}  // namespace kiln::server
