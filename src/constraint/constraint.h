// Structured output: compile a constraint once per request, then let a Matcher (matcher.h) give
// the allowed tokens of each decoding step.
//
//   TRY_ASSIGN(auto grammar, CompileJsonSchema(R"({"type":"object","properties":{...}})"));
//   TRY_ASSIGN(auto vocab, TokenVocabulary::FromTokenizer(tokenizer, stop_ids));  // once per model
//   Matcher matcher(grammar, vocab);
//   std::vector<uint64_t> mask(vocab->mask_words());
//   loop: matcher.FillMask(mask); sample among set bits; TRY(matcher.Accept(token));
//
// Front ends (all return kInvalidArgument with a message that says what and where):
//   CompileGbnf      llama.cpp's GBNF: `name ::= ...` rules, root rule `root`, | ( ) * + ? {m,n},
//                    "literals" with escapes, [classes] with ranges and ^, ., # comments.
//                    Errors carry line:column. Left recursion is refused.
//   CompileRegex     the whole output must match (anchors implicit): literals, escapes, classes
//                    (\d \w \s and negations), ., groups, |, ? * + {m,n} (lazy forms accepted).
//                    Backreferences, lookaround, word boundaries refused by name.
//   CompileJsonSchema  JSON Schema to grammar (json_schema.h documents the keywords).
//   CompileAnyJson   any JSON object (OpenAI's json_object mode).
// All matching is over the UTF-8 bytes of the output. Repetition bounds are at most
// kMaxRepetition, nesting at most kMaxNestingDepth (grammar.h).
#pragma once

#include <memory>
#include <string_view>

#include "constraint/grammar.h"

namespace kiln::constraint {

Result<GrammarSpec> ParseGbnf(std::string_view text);
Result<std::shared_ptr<const Grammar>> CompileGbnf(std::string_view text);

// `what` names the source in errors ("regex", or "pattern at /properties/x").
Result<Expr> ParseRegex(std::string_view pattern, const std::string& what = "regex");
Result<std::shared_ptr<const Grammar>> CompileRegex(std::string_view pattern);

Result<std::shared_ptr<const Grammar>> CompileJsonSchema(std::string_view schema_json);
Result<std::shared_ptr<const Grammar>> CompileAnyJson();

}  // namespace kiln::constraint
