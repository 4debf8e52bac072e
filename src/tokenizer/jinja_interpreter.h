// Renders a parsed chat template (jinja_parser.h) with Jinja2 semantics, bounded for untrusted
// templates.
//
//   TRY_ASSIGN(auto program, ParseTemplate(source));
//   ValueDict context;
//   context.Set("messages", Value::FromJson(messages_json));
//   context.Set("add_generation_prompt", Value(true));
//   TRY_ASSIGN(std::string text, RenderTemplate(program, context, {}));
//
// Scoping follows Jinja2: a for loop body and a macro body get their own scope (a "set" inside
// does not leak out); "if" does not; namespace() objects carry state across scopes; macros see
// the template's top-level variables, not their caller's. Globals: range, namespace, dict,
// raise_exception (fails the render with kInvalidArgument and the template's message) and
// strftime_now (formats RenderOptions::now, or the current time).
//
// Safety: nothing touches the file system or the network. Output size, the number of executed
// steps (statements, loop iterations, calls) and call depth are bounded by RenderLimits; hitting
// a bound fails with kOutOfRange naming it. Undefined variables print as "" (Jinja2's default
// Undefined) but using one in arithmetic or as an object fails with kInvalidArgument.
// Thread-safety: a Program can be rendered from several threads at once.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace kiln::tokenizer::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{8} << 20;
  int64_t max_steps = 10'000'000;
  int max_call_depth = 64;
  int64_t max_range_length = 1'000'000;
};

struct RenderOptions {
  RenderLimits limits;
  std::optional<std::time_t> now;  // for strftime_now; current time when empty
};

Result<std::string> RenderTemplate(const std::shared_ptr<const Program>& program, const ValueDict& context,
                                   const RenderOptions& options);

}  // namespace kiln::tokenizer::jinja
