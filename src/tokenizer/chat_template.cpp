#include "tokenizer/chat_template.h"

#include "tokenizer/jinja_parser.h"

namespace kiln::tokenizer {

Result<ChatTemplate> ChatTemplate::Parse(const std::string& source, std::string bos_token, std::string eos_token) {
  ChatTemplate tmpl;
  TRY_ASSIGN(tmpl.program_, jinja::ParseTemplate(source));
  tmpl.source_ = source;
  tmpl.bos_token_ = std::move(bos_token);
  tmpl.eos_token_ = std::move(eos_token);
  return tmpl;
}

Result<std::string> ChatTemplate::Render(const ChatRequest& request, const jinja::RenderOptions& options) const {
  if (!request.messages.is_array()) return Error(ErrorCode::kInvalidArgument, "chat messages must be a list");
  jinja::ValueDict context;
  context.Set("messages", jinja::Value::FromJson(request.messages));
  context.Set("tools", jinja::Value::FromJson(request.tools));
  context.Set("documents", jinja::Value::None());
  context.Set("add_generation_prompt", jinja::Value(request.add_generation_prompt));
  context.Set("bos_token", jinja::Value(bos_token_));
  context.Set("eos_token", jinja::Value(eos_token_));
  if (request.extra_context.is_object()) {
    for (const auto& [key, value] : request.extra_context.items()) context.Set(key, jinja::Value::FromJson(value));
  }
  Result<std::string> text = jinja::RenderTemplate(program_, context, options);
  if (!text.has_value()) return text.error().WithContext("chat template");
  return text;
}

}  // namespace kiln::tokenizer
