// The conversation and tools of a chat request, in OpenAI's shape (/v1/chat/completions) or
// Ollama's (/api/chat), which differ only in details:
//   message roles       system (also OpenAI's "developer"), user, assistant, tool
//   content             a string, null, or a list of {"type": "text", "text"} parts
//   assistant calls     "tool_calls": [{"id"?, "type"?, "function": {"name", "arguments"}}];
//                       arguments a JSON object's text (OpenAI) or the object itself (Ollama)
//   tool results        "tool_call_id" (OpenAI) and/or "name" / "tool_name" (Ollama)
//   assistant thinking  "reasoning_content" or "reasoning" (llama-server, vLLM), "thinking" (Ollama)
//   tools               [{"type": "function", "function": {"name", "description"?, "parameters"?}}]
// Every error is kInvalidArgument naming the field ("'messages[2].tool_calls[0].function.name'
// must be ...").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/kiln.h"
#include "server/request.h"

namespace kiln::server {

Result<std::vector<ChatMessage>> ParseMessages(const nlohmann::json& messages, int64_t max_messages);

struct ToolSet {
  std::string definitions;         // the tools as the chat template takes them (JSON text)
  std::vector<std::string> names;  // their function names, in order
};
Result<ToolSet> ParseTools(const nlohmann::json& tools);

// GBNF for exactly one call, in Gemma 4's syntax (gemma4_output.h), of one of the `allowed`
// tools: what tool_choice "required" or a named function constrains the reply to. The arguments
// follow each tool's parameters: its properties in key order, as the template lists them (required
// ones always, optional ones maybe), each of its type (string, integer, number, boolean, array, object, or a string
// enum); a tool without parameters takes {}. Strings hold no '<' and at most 1024 bytes.
std::string ToolCallGrammar(const ToolSet& tools, const std::vector<std::string>& allowed);

// OpenAI's "tools" and "tool_choice" (auto | none | required | {"type": "function",
// "function": {"name"}}): the tools go to the chat template unless "none"; "required" and a
// named function constrain the reply to one call (ToolCallGrammar). 400s: tools without a chat
// template, an unknown named function, tool_choice required without tools, a forced call
// together with response_format.
Status ParseToolFields(const nlohmann::json& root, const ApiLimits& limits, ApiRequest* out);
// Thinking switches for the chat template: "chat_template_kwargs" (an object, passed as is),
// "enable_thinking" (a boolean) and "reasoning_effort" (none | minimal: off; low | medium |
// high: on). Ignored without a chat template.
Status ParseReasoningFields(const nlohmann::json& root, const ApiLimits& limits, GenerationRequest* generation);
// Sets enable_thinking among the template variables unless they already set it.
void SetThinking(bool enabled, GenerationRequest* generation);

// Puts the conversation into `generation`: as messages for the model's chat template, or, when
// the model has none, as a plain prompt of the contents joined by "\n".
Status SetConversation(std::vector<ChatMessage> messages, const ApiLimits& limits, GenerationRequest* generation);

}  // namespace kiln::server
