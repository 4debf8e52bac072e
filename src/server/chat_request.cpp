#include "server/chat_request.h"

#include <algorithm>
#include <optional>

#include "server/json_fields.h"

namespace kiln::server {
namespace {

using nlohmann::json;

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

// Function names as OpenAI allows them: letters, digits, '_', '-' (and '.'), at most 64.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!word) return false;
  }
  return true;
}

Result<std::string> StringField(const json& object, const char* name, const std::string& where) {
  const json* value = Field(object, name);
  if (!value) return std::string();
  if (!value->is_string()) return Invalid("'" + where + "." + name + "' must be a string, got " + Shown(*value));
  return value->get<std::string>();
}

Result<std::vector<ToolCall>> ParseToolCalls(const json& calls, const std::string& where) {
  if (!calls.is_array()) return Invalid("'" + where + "' must be a list of tool calls, got " + Shown(calls));
  std::vector<ToolCall> out;
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const json& call = calls[i];
    const json* function = call.is_object() ? Field(call, "function") : nullptr;
    if (!function || !function->is_object()) return Invalid("'" + at + ".function' must be an object with 'name' and 'arguments'");
    ToolCall parsed;
    TRY_ASSIGN(parsed.id, StringField(call, "id", at));
    TRY_ASSIGN(parsed.name, StringField(*function, "name", at + ".function"));
    if (!ValidName(parsed.name)) return Invalid("'" + at + ".function.name' must be a function name, got " + Shown(parsed.name));
    const json* arguments = Field(*function, "arguments");
    json object = json::object();
    if (arguments && arguments->is_string()) {
      object = json::parse(arguments->get<std::string>(), nullptr, /*allow_exceptions=*/false);
    } else if (arguments) {
      object = *arguments;
    }
    if (!object.is_object()) {
      return Invalid("'" + at + ".function.arguments' must be a JSON object (or its text), got " + Shown(*arguments));
    }
    parsed.arguments = Dump(object);
    out.push_back(std::move(parsed));
  }
  return out;
}

}  // namespace

Result<std::vector<ChatMessage>> ParseMessages(const json& messages, int64_t max_messages) {
  if (!messages.is_array() || messages.empty()) return Invalid("'messages' must be a non-empty list of messages");
  if (static_cast<int64_t>(messages.size()) > max_messages) {
    return Invalid("'messages' has " + std::to_string(messages.size()) + " messages, more than the limit of " +
                   std::to_string(max_messages));
  }
  std::vector<ChatMessage> parsed;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const json& message = messages[i];
    if (!message.is_object()) return Invalid("'" + where + "' must be an object, got " + Shown(message));
    const json* role = Field(message, "role");
    const bool known = role && role->is_string() &&
                       (*role == "system" || *role == "developer" || *role == "user" || *role == "assistant" || *role == "tool");
    if (!known) {
      return Invalid("'" + where + ".role' must be system, user, assistant or tool, got " + (role ? Shown(*role) : "nothing"));
    }
    ChatMessage out;
    out.role = *role == "developer" ? "system" : role->get<std::string>();
    if (const json* calls = Field(message, "tool_calls"); calls && out.role == "assistant") {
      TRY_ASSIGN(out.tool_calls, ParseToolCalls(*calls, where + ".tool_calls"));
    }
    const json* content = Field(message, "content");
    if (!content && out.tool_calls.empty()) return Invalid("'" + where + ".content' is missing");
    if (content) {
      TRY_ASSIGN(out.content, MessageContent(*content, where));
    }
    if (const json* images = Field(message, "images"); images && !(images->is_array() && images->empty())) {
      return Invalid("'" + where + ".images': this server takes text only");
    }
    for (const char* field : {"reasoning_content", "reasoning", "thinking"}) {
      TRY_ASSIGN(std::string thinking, StringField(message, field, where));
      if (out.reasoning.empty()) out.reasoning = std::move(thinking);
    }
    TRY_ASSIGN(out.tool_call_id, StringField(message, "tool_call_id", where));
    for (const char* field : {"name", "tool_name"}) {
      TRY_ASSIGN(std::string name, StringField(message, field, where));
      if (out.name.empty()) out.name = std::move(name);
    }
    parsed.push_back(std::move(out));
  }
  return parsed;
}

Result<ToolSet> ParseTools(const json& tools) {
  if (!tools.is_array()) return Invalid("'tools' must be a list of {\"type\": \"function\", \"function\": {...}}, got " + Shown(tools));
  ToolSet out;
  json definitions = json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string where = "tools[" + std::to_string(i) + "]";
    const json& tool = tools[i];
    const json* type = tool.is_object() ? Field(tool, "type") : nullptr;
    const json* function = tool.is_object() ? Field(tool, "function") : nullptr;
    if ((type && *type != "function") || !function || !function->is_object()) {
      return Invalid("'" + where + "' must be {\"type\": \"function\", \"function\": {\"name\", ...}}, got " + Shown(tool));
    }
    TRY_ASSIGN(std::string name, StringField(*function, "name", where + ".function"));
    if (!ValidName(name)) return Invalid("'" + where + ".function.name' must be a function name (letters, digits, _ - .), got " + Shown(name));
    if (const json* parameters = Field(*function, "parameters"); parameters && !parameters->is_object()) {
      return Invalid("'" + where + ".function.parameters' must be a JSON Schema object, got " + Shown(*parameters));
    }
    json definition = json{{"type", "function"}, {"function", *function}};
    // Gemma 4's template writes the description unconditionally.
    if (!definition["function"].contains("description")) definition["function"]["description"] = "";
    definitions.push_back(std::move(definition));
    out.names.push_back(std::move(name));
  }
  out.definitions = Dump(definitions);
  return out;
}

namespace {

// A GBNF string literal of `text`.
std::string Literal(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The value rule for one property's schema: its type's rule, or its string enum; anything else
// takes any value.
std::string ValueRule(const json& schema) {
  if (!schema.is_object()) return "value";
  if (const json* values = Field(schema, "enum"); values && values->is_array() && !values->empty()) {
    std::string alternatives;
    for (const json& v : *values) {
      if (!v.is_string()) return "value";
      alternatives += (alternatives.empty() ? "(" : " | ") + std::string("\"<|\\\"|>\" ") + Literal(v.get<std::string>()) + " \"<|\\\"|>\"";
    }
    return alternatives + ")";
  }
  const json* type = Field(schema, "type");
  if (!type || !type->is_string()) return "value";
  const std::string& name = type->get_ref<const std::string&>();
  if (name == "string") return "string";
  if (name == "integer") return "integer";
  if (name == "number") return "number";
  if (name == "boolean") return "(\"true\" | \"false\")";
  if (name == "array") return "list";
  if (name == "object") return "object";
  return "value";
}

// Rules for one tool's arguments, named `prefix`: its parameters' properties in key order,
// the required ones always present, each optional one present or not; no parameters: {}.
// f<i>: the members from property i when none was written yet; s<i>: after one was.
std::string ArgumentsRules(const json& function, const std::string& prefix) {
  const json* parameters = Field(function, "parameters");
  if (!parameters) return prefix + " ::= \"{}\"\n";
  const json* properties = Field(*parameters, "properties");
  if (!properties || !properties->is_object()) return prefix + " ::= object\n";
  std::vector<std::string> members;  // "key:" and the value's rule
  std::vector<bool> required;
  const json* names = Field(*parameters, "required");
  for (const auto& [key, schema] : properties->items()) {
    members.push_back(Literal(key + ":") + " " + ValueRule(schema));
    bool is_required = false;
    if (names && names->is_array()) {
      for (const json& n : *names) is_required = is_required || n == key;
    }
    required.push_back(is_required);
  }
  const size_t n = members.size();
  if (n == 0) return prefix + " ::= \"{}\"\n";
  std::vector<bool> optional_from(n + 1, true);
  for (size_t i = n; i-- > 0;) optional_from[i] = optional_from[i + 1] && !required[i];
  auto next = [&](const char* kind, size_t i) {
    if (i + 1 == n) return std::string();
    return " " + prefix + kind + std::to_string(i + 1) + (optional_from[i + 1] ? "?" : "");
  };
  std::string rules = prefix + " ::= \"{\" " + prefix + "f0" + (optional_from[0] ? "?" : "") + " \"}\"\n";
  for (size_t i = 0; i < n; ++i) {
    const std::string& member = members[i];
    const bool skip = !required[i] && i + 1 < n;
    rules += prefix + "f" + std::to_string(i) + " ::= " + member + next("s", i) +
             (skip ? " | " + prefix + "f" + std::to_string(i + 1) : "") + "\n";
    rules += prefix + "s" + std::to_string(i) + " ::= \",\" " + member + next("s", i) +
             (skip ? " | " + prefix + "s" + std::to_string(i + 1) : "") + "\n";
  }
  return rules;
}

}  // namespace

std::string ToolCallGrammar(const ToolSet& tools, const std::vector<std::string>& allowed) {
  const json definitions = json::parse(tools.definitions, nullptr, /*allow_exceptions=*/false);
  std::string calls, rules;
  for (size_t t = 0; t < tools.names.size() && t < definitions.size(); ++t) {
    if (std::find(allowed.begin(), allowed.end(), tools.names[t]) == allowed.end()) continue;
    const std::string prefix = "tool" + std::to_string(t);
    calls += (calls.empty() ? "" : " | ") + Literal(tools.names[t]) + " " + prefix;
    rules += ArgumentsRules(definitions[t]["function"], prefix);
  }
  return "root ::= \"<|tool_call>call:\" (" + calls + ") \"<tool_call|>\"\n" + rules +
         "members ::= member (\",\" member){0,31}\n"
         "member ::= key \":\" value\n"
         "key ::= [a-zA-Z_] [a-zA-Z0-9_]{0,63}\n"
         "value ::= string | number | \"true\" | \"false\" | \"null\" | object | list\n"
         "object ::= \"{\" members? \"}\"\n"
         "list ::= \"[\" (value (\",\" value){0,63})? \"]\"\n"
         "string ::= \"<|\\\"|>\" [^<]{0,1024} \"<|\\\"|>\"\n"
         "integer ::= \"-\"? [0-9]{1,16}\n"
         "number ::= integer (\".\" [0-9]{1,16})?\n";
}

Status ParseToolFields(const json& root, const ApiLimits& limits, ApiRequest* out) {
  GenerationRequest& g = out->generation;
  ToolSet tools;
  if (const json* given = Field(root, "tools")) {
    TRY_ASSIGN(tools, ParseTools(*given));
  }
  std::string choice = "auto";
  std::string forced;
  if (const json* tool_choice = Field(root, "tool_choice")) {
    const json* function = tool_choice->is_object() ? Field(*tool_choice, "function") : nullptr;
    const json* name = function && function->is_object() ? Field(*function, "name") : nullptr;
    if (tool_choice->is_string() && (*tool_choice == "auto" || *tool_choice == "none" || *tool_choice == "required")) {
      choice = tool_choice->get<std::string>();
    } else if (name && name->is_string()) {
      choice = "function";
      forced = name->get<std::string>();
    } else {
      return Invalid("'tool_choice' must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\"}}, got " +
                     Shown(*tool_choice));
    }
  }
  if (tools.names.empty()) {
    if (choice == "required" || choice == "function") return Invalid("'tool_choice' " + Shown(Field(root, "tool_choice") ? *Field(root, "tool_choice") : json()) + " needs 'tools'");
    return Status::Ok();
  }
  if (!limits.has_chat_template) return Invalid("'tools' need the model's chat template, and this model has none");
  if (choice == "none") return Status::Ok();
  g.tools = tools.definitions;
  out->parse_tool_calls = true;
  if (choice == "auto") return Status::Ok();
  if (choice == "function" && std::find(tools.names.begin(), tools.names.end(), forced) == tools.names.end()) {
    return Invalid("'tool_choice' names the function '" + forced + "', which is not among 'tools'");
  }
  if (!g.json_schema.empty() || g.json_object) return Invalid("'tool_choice' " + choice + " cannot be combined with 'response_format'");
  g.grammar = ToolCallGrammar(tools, choice == "function" ? std::vector<std::string>{forced} : tools.names);
  return Status::Ok();
}

void SetThinking(bool enabled, GenerationRequest* generation) {
  json kwargs = generation->chat_template_kwargs.empty() ? json::object() : json::parse(generation->chat_template_kwargs, nullptr, false);
  if (!kwargs.is_object()) kwargs = json::object();
  if (!kwargs.contains("enable_thinking")) kwargs["enable_thinking"] = enabled;
  generation->chat_template_kwargs = Dump(kwargs);
}

Status ParseReasoningFields(const json& root, const ApiLimits& limits, GenerationRequest* generation) {
  if (const json* kwargs = Field(root, "chat_template_kwargs")) {
    if (!kwargs->is_object()) return Invalid("'chat_template_kwargs' must be an object, got " + Shown(*kwargs));
    if (limits.has_chat_template && !kwargs->empty()) generation->chat_template_kwargs = Dump(*kwargs);
  }
  std::optional<bool> thinking;
  if (const json* enable = Field(root, "enable_thinking")) {
    if (!enable->is_boolean()) return Invalid("'enable_thinking' must be a boolean, got " + Shown(*enable));
    thinking = enable->get<bool>();
  }
  if (const json* effort = Field(root, "reasoning_effort")) {
    const bool known = effort->is_string() && (*effort == "none" || *effort == "minimal" || *effort == "low" ||
                                               *effort == "medium" || *effort == "high");
    if (!known) return Invalid("'reasoning_effort' must be none, minimal, low, medium or high, got " + Shown(*effort));
    if (!thinking) thinking = !(*effort == "none" || *effort == "minimal");
  }
  if (thinking && limits.has_chat_template) SetThinking(*thinking, generation);
  return Status::Ok();
}

Status SetConversation(std::vector<ChatMessage> messages, const ApiLimits& limits, GenerationRequest* generation) {
  if (limits.has_chat_template) {
    generation->messages = std::move(messages);
    return Status::Ok();
  }
  for (size_t i = 0; i < messages.size(); ++i) generation->prompt += (i ? "\n" : "") + messages[i].content;
  if (generation->prompt.empty()) return Invalid("'messages' have no text");
  return Status::Ok();
}

}  // namespace kiln::server
