#include "server/ollama.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "server/chat_request.h"
#include "server/json_fields.h"

namespace kiln::server {
namespace {

using nlohmann::json;

// Ollama names carry a tag; the served model is "<name>:latest" unless its name has one.
std::string TaggedName(const std::string& name) { return name.find(':') == std::string::npos ? name + ":latest" : name; }

Status CheckName(const json* model, const ApiLimits& limits) {
  if (!model || !model->is_string() || model->get_ref<const std::string&>().empty()) return Invalid("model is required");
  const std::string& name = model->get_ref<const std::string&>();
  if (name != limits.model_name && name != TaggedName(limits.model_name)) {
    return Error(ErrorCode::kNotFound, "model '" + name + "' not found; this server serves '" + TaggedName(limits.model_name) + "'");
  }
  return Status::Ok();
}

json ToolCallsJson(const std::vector<ParsedToolCall>& calls) {
  json out = json::array();
  for (const ParsedToolCall& call : calls) {
    out.push_back({{"function", {{"name", call.name}, {"arguments", json::parse(call.arguments, nullptr, false)}}}});
  }
  return out;
}

std::string Family(const ModelInfo& info) {
  const size_t colon = info.architecture.find(':');
  std::string family = info.architecture.substr(0, colon);
  if (const size_t text = family.find("_text"); text != std::string::npos) family.erase(text);
  return family.empty() ? "gemma4" : family;
}

// A stable identifier of the served files (FNV-1a of the path), in the place of Ollama's digest:
// kiln does not hash weights, and no Ollama client checks the value.
std::string Digest(const ModelInfo& info) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : info.path) hash = (hash ^ c) * 1099511628211ull;
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

json Details(const ModelInfo& info) {
  const bool kiln_file = info.path.ends_with(".kiln"), gguf = info.path.ends_with(".gguf");
  return {{"parent_model", ""},
          {"format", kiln_file ? "kiln" : gguf ? "gguf" : "safetensors"},
          {"family", Family(info)},
          {"families", json::array({Family(info)})},
          {"parameter_size", ""},
          {"quantization_level", ""}};
}

json Base(const std::string& model) {
  return {{"model", TaggedName(model)}, {"created_at", Rfc3339(UnixNanosecondsNow())}};
}

int64_t Nanoseconds(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

}  // namespace

Status CheckOllamaModel(const json& body, const ApiLimits& limits) {
  const json* model = Field(body, "model");
  return CheckName(model ? model : Field(body, "name"), limits);
}

Result<OllamaRequest> ParseOllamaRequest(OllamaRoute route, std::string_view body, const ApiLimits& limits) {
  TRY_ASSIGN(json root, ParseObject(body));
  OllamaRequest out;
  out.route = route;
  ApiRequest& api = out.api;
  GenerationRequest& g = api.generation;
  TRY(CheckName(Field(root, "model"), limits));
  TRY_ASSIGN(api.stream, BoolField(root, "stream", true));
  g.max_tokens = limits.context;
  if (const json* options = Field(root, "options")) {
    if (!options->is_object()) return Invalid("'options' must be an object, got " + Shown(*options));
    TRY(ParseSamplingFields(*options, limits, &g));
    if (const json* predict = Field(*options, "num_predict")) {
      TRY_ASSIGN(const int64_t count, IntField(predict, "num_predict", -2, INT32_MAX));
      g.max_tokens = count < 0 ? limits.context : std::min(count, limits.context);
    }
  }
  if (const json* format = Field(root, "format")) {
    if (*format == "json") {
      g.json_object = true;
    } else if (format->is_object()) {
      g.json_schema = Dump(*format);
    } else if (*format != "") {
      return Invalid("'format' must be \"json\" or a JSON Schema object, got " + Shown(*format));
    }
  }
  if (const json* think = Field(root, "think")) {
    // Newer Ollama also takes an effort ("low", "medium", "high") for models that grade it.
    const bool effort = *think == "low" || *think == "medium" || *think == "high";
    if (!think->is_boolean() && !effort) return Invalid("'think' must be a boolean, got " + Shown(*think));
    if (limits.has_chat_template) SetThinking(effort || think->get<bool>(), &g);
  }
  if (const json* images = Field(root, "images"); images && !(images->is_array() && images->empty())) {
    return Invalid("'images': this server takes text only");
  }

  if (route == OllamaRoute::kChat) {
    const json* messages = Field(root, "messages");
    if (!messages || (messages->is_array() && messages->empty())) {
      out.load_only = true;
      return out;
    }
    TRY_ASSIGN(std::vector<ChatMessage> parsed, ParseMessages(*messages, limits.max_messages));
    TRY(SetConversation(std::move(parsed), limits, &g));
    if (const json* tools = Field(root, "tools")) {
      TRY_ASSIGN(ToolSet set, ParseTools(*tools));
      if (!set.names.empty()) {
        if (!limits.has_chat_template) return Invalid("'tools' need the model's chat template, and this model has none");
        g.tools = set.definitions;
        api.parse_tool_calls = true;
      }
    }
    api.parse_reply = limits.has_chat_template;
    g.keep_special_tokens = api.parse_reply;
    return out;
  }

  auto text = [&](const char* name) -> Result<std::string> {
    const json* value = Field(root, name);
    if (!value) return std::string();
    if (!value->is_string()) {
      std::string message = "'";  // built in steps: g++ 12 warns falsely (-Wrestrict) on "'" + std::string
      message.append(name).append("' must be a string, got ").append(Shown(*value));
      return Invalid(message);
    }
    return value->get<std::string>();
  };
  TRY_ASSIGN(std::string prompt, text("prompt"));
  TRY_ASSIGN(std::string system, text("system"));
  TRY_ASSIGN(std::string suffix, text("suffix"));
  TRY_ASSIGN(const bool raw, BoolField(root, "raw", false));
  if (!suffix.empty()) return Invalid("'suffix' (fill-in-the-middle) is not supported by this model");
  if (prompt.empty()) {
    out.load_only = true;
    return out;
  }
  if (raw || !limits.has_chat_template) {
    // Raw: the prompt exactly as given. Without a template, the system text leads, as chat's join.
    g.prompt = raw || system.empty() ? prompt : system + "\n" + prompt;
    return out;
  }
  if (!system.empty()) g.messages.push_back({"system", system});
  g.messages.push_back({"user", prompt});
  api.parse_reply = true;
  g.keep_special_tokens = true;
  return out;
}

int64_t UnixNanosecondsNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Rfc3339(int64_t unix_nanoseconds) {
  const std::time_t seconds = static_cast<std::time_t>(unix_nanoseconds / 1000000000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  const size_t length = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + length, sizeof(text) - length, ".%09lldZ", static_cast<long long>(unix_nanoseconds % 1000000000));
  return text;
}

std::string OllamaDoneReason(const std::string& stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "context_full") return "length";
  return "stop";
}

json OllamaPiece(OllamaRoute route, const std::string& model, const ReplyDelta& delta) {
  json body = Base(model);
  if (route == OllamaRoute::kChat) {
    json message = {{"role", "assistant"}, {"content", delta.content}};
    if (!delta.reasoning.empty()) message["thinking"] = delta.reasoning;
    if (!delta.tool_calls.empty()) message["tool_calls"] = ToolCallsJson(delta.tool_calls);
    body["message"] = std::move(message);
  } else {
    body["response"] = delta.content;
    if (!delta.reasoning.empty()) body["thinking"] = delta.reasoning;
  }
  body["done"] = false;
  return body;
}

json OllamaDone(OllamaRoute route, const std::string& model, const ReplyDelta& reply, const Completion& completion) {
  json body = OllamaPiece(route, model, reply);
  body["done"] = true;
  body["done_reason"] = OllamaDoneReason(completion.stop_reason);
  // The model was loaded before the server took requests: nothing to load per request.
  body["total_duration"] = Nanoseconds(completion.first_token_seconds + completion.generation_seconds);
  body["load_duration"] = 0;
  body["prompt_eval_count"] = completion.prompt_tokens;
  body["prompt_eval_duration"] = Nanoseconds(completion.prompt_seconds);
  body["eval_count"] = static_cast<int64_t>(completion.tokens.size());
  body["eval_duration"] = Nanoseconds(completion.generation_seconds);
  return body;
}

json OllamaLoaded(OllamaRoute route, const std::string& model) {
  json body = OllamaPiece(route, model, {});
  body["done"] = true;
  body["done_reason"] = "load";
  return body;
}

json OllamaModelEntry(const ModelInfo& info, const std::string& name, int64_t loaded_unix_nanoseconds, bool running) {
  json entry = {{"name", TaggedName(name)}, {"model", TaggedName(name)}};
  if (!running) entry["modified_at"] = Rfc3339(loaded_unix_nanoseconds);
  entry["size"] = running ? info.weight_bytes + info.kv_pool_bytes : info.weight_bytes;
  entry["digest"] = Digest(info);
  entry["details"] = Details(info);
  if (running) {
    // Loaded for as long as the server runs: Ollama shows such a model (keep_alive < 0) as
    // expiring centuries from now.
    constexpr int64_t kCentury = int64_t{100} * 365 * 24 * 3600 * 1000000000;
    entry["expires_at"] = Rfc3339(loaded_unix_nanoseconds + kCentury);
    entry["size_vram"] = info.device == "cuda" ? info.weight_bytes + info.kv_pool_bytes : 0;
    entry["context_length"] = info.context;
  }
  return entry;
}

json OllamaShow(const ModelInfo& info, const std::string& name, int64_t loaded_unix_nanoseconds) {
  const SamplingParams& s = info.default_sampling;
  char parameters[256];
  std::snprintf(parameters, sizeof(parameters), "temperature %g\ntop_k %lld\ntop_p %g\nmin_p %g\nrepeat_penalty %g\nnum_ctx %lld",
                s.temperature, static_cast<long long>(s.top_k), s.top_p, s.min_p, s.repetition_penalty,
                static_cast<long long>(info.context));
  json capabilities = json::array({"completion"});
  if (info.has_chat_template) capabilities.push_back("tools");
  const std::string family = Family(info);
  return {{"modelfile", "# served by kiln\nFROM " + info.path + "\n"},
          {"parameters", parameters},
          {"template", ""},
          {"details", Details(info)},
          {"model_info", {{"general.architecture", family}, {"general.basename", name}, {family + ".context_length", info.context},
                          {family + ".vocab_size", info.vocab_size}}},
          {"capabilities", capabilities},
          {"modified_at", Rfc3339(loaded_unix_nanoseconds)}};
}

std::string OllamaErrorBody(const std::string& message) { return Dump(json{{"error", message}}); }

}  // namespace kiln::server
