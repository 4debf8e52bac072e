// Parser for the chat-template Jinja subset: tokens (jinja_lexer.h) -> Program (jinja_ast.h).
//
//   TRY_ASSIGN(std::shared_ptr<const Program> program, ParseTemplate(source));
//
// Statements: if/elif/else, for (tuple targets, inline "if", else, loop.*), set (names, tuple,
// namespace attribute, block form with filter), macro, filter blocks, break/continue
// (loopcontrols), raw, generation (transformers' assistant-mask tag; rendered transparently),
// comments. Expressions: literals, lists, tuples, dicts, attribute/index/slice access, calls
// with keyword arguments, filters, tests, not/and/or, comparisons, in / not in, arithmetic,
// ~, conditional expressions — with Jinja2's precedence.
// Anything else (include, import, extends, block, call, recursive loops, ...) fails with
// kUnsupported naming the construct and line. Nesting depth is limited (kMaxParseDepth), so a
// hostile template cannot exhaust the stack.
#pragma once

#include <memory>
#include <string_view>

#include "core/status.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace kiln::tokenizer::jinja {

inline constexpr int kMaxParseDepth = 200;

Result<std::shared_ptr<const Program>> ParseTemplate(std::string_view source, const LexerOptions& options = {});

}  // namespace kiln::tokenizer::jinja
