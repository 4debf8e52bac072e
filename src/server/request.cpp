#include "server/request.h"

#include <nlohmann/json.hpp>

#include "server/chat_request.h"
#include "server/json_fields.h"

namespace kiln::server {
namespace {

using nlohmann::json;

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
  TRY(ParseSamplingFields(root, limits, &g));

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

}  // namespace

Status ParseSamplingFields(const json& root, const ApiLimits& limits, GenerationRequest* generation) {
  GenerationRequest& g = *generation;
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
  // llama-server's names: repeat_penalty, and repeat_last_n (-1: the whole sequence, 0: off).
  if (const json* v = Field(root, "repeat_penalty")) {
    TRY_ASSIGN(sampling.repetition_penalty, NumberField(v, "repeat_penalty", 0, 2, true));
    any_sampling = true;
  }
  if (const json* v = Field(root, "repeat_last_n")) {
    TRY_ASSIGN(const int64_t last_n, IntField(v, "repeat_last_n", -1, limits.context));
    if (last_n == 0) sampling.repetition_penalty = 1.0f;
    sampling.repetition_window = last_n < 0 ? 0 : last_n;
    any_sampling = true;
  }
  // OpenAI's, over the generated tokens.
  if (const json* v = Field(root, "presence_penalty")) {
    TRY_ASSIGN(sampling.presence_penalty, NumberField(v, "presence_penalty", -2, 2, false));
    any_sampling = true;
  }
  if (const json* v = Field(root, "frequency_penalty")) {
    TRY_ASSIGN(sampling.frequency_penalty, NumberField(v, "frequency_penalty", -2, 2, false));
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
  return Status::Ok();
}

Result<ApiRequest> ParseChatRequest(std::string_view body, const ApiLimits& limits) {
  TRY_ASSIGN(json root, ParseObject(body));
  ApiRequest out;
  const json* messages = Field(root, "messages");
  TRY_ASSIGN(std::vector<ChatMessage> parsed, ParseMessages(messages ? *messages : json(), limits.max_messages));
  TRY(SetConversation(std::move(parsed), limits, &out.generation));
  TRY(ParseCommon(root, limits, &out));
  TRY_ASSIGN(out.logprobs, BoolField(root, "logprobs", false));
  if (const json* top = Field(root, "top_logprobs")) {
    TRY_ASSIGN(out.top_logprobs, IntField(top, "top_logprobs", 0, limits.max_top_logprobs));
    if (!out.logprobs) return Invalid("'top_logprobs' needs 'logprobs': true");
  }
  TRY(ParseToolFields(root, limits, &out));
  TRY(ParseReasoningFields(root, limits, &out.generation));
  out.parse_reply = limits.has_chat_template;
  out.generation.keep_special_tokens = out.parse_reply;
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
