// Lexer for the chat-template Jinja subset: template source -> flat token stream.
//
//   TRY_ASSIGN(std::vector<Token> tokens, Lex("Hi {{ name }}!", {}));
//   // kText "Hi ", kVarBegin, kName "name", kVarEnd, kText "!", kEnd
//
// Whitespace control follows Jinja2 with the settings transformers uses for chat templates:
// trim_blocks (drop the first newline after a block or comment tag) and lstrip_blocks (drop
// spaces/tabs before a block or comment tag that starts a line); "-" on a tag strips all
// whitespace on that side, "+" disables lstrip/trim for that tag. Comments are dropped;
// {% raw %}...{% endraw %} becomes one text token.
// Errors (kInvalidArgument) name the line: unterminated tags, strings, unknown characters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kiln::tokenizer::jinja {

enum class TokenKind { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOperator, kEnd };

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;  // text, name, decoded string literal, operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

Result<std::vector<Token>> Lex(std::string_view source, const LexerOptions& options);

}  // namespace kiln::tokenizer::jinja
