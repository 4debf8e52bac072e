// Chat templates: renders a model's own Jinja chat template (tokenizer_config.json
// "chat_template", chat_template.jinja, or GGUF tokenizer.chat_template) for a conversation,
// the way transformers' apply_chat_template does.
//
//   TRY_ASSIGN(ChatTemplate tmpl, ChatTemplate::Parse(source, "<bos>", "<eos>"));
//   ChatRequest request;
//   request.messages = nlohmann::ordered_json::parse(R"([{"role":"user","content":"Hi"}])");
//   request.add_generation_prompt = true;
//   request.extra_context["enable_thinking"] = false;   // template-specific switches
//   TRY_ASSIGN(std::string prompt, tmpl.Render(request));
//
// The template sees: messages, tools (None when not given), documents (None),
// add_generation_prompt, bos_token, eos_token and every key of extra_context, like
// transformers (trim_blocks, lstrip_blocks, loop controls; tojson = json.dumps with
// ensure_ascii=False and insertion-ordered keys). Templates are untrusted input: see
// jinja_interpreter.h for the limits; an unsupported construct fails Parse with kUnsupported
// naming it. A ChatTemplate is immutable and may be rendered from several threads.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_interpreter.h"

namespace kiln::tokenizer {

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{"role", "content", ...}]
  nlohmann::ordered_json tools;                                       // null or a list of tool schemas
  bool add_generation_prompt = true;
  nlohmann::ordered_json extra_context = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  static Result<ChatTemplate> Parse(const std::string& source, std::string bos_token, std::string eos_token);

  Result<std::string> Render(const ChatRequest& request, const jinja::RenderOptions& options = {}) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::Program> program_;
  std::string bos_token_, eos_token_;
};

}  // namespace kiln::tokenizer
