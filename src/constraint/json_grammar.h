// Building blocks for JSON grammars, shared by CompileAnyJson and the JSON Schema front end.
//
// AddJsonBaseRules adds these rules to a GrammarSpec (names are fixed):
//   json-ws      at most kMaxJsonWhitespace of [ \t\n\r]: whitespace between tokens is bounded,
//                so a model cannot pad forever (enough for pretty-printing a few levels deep)
//   json-value   object | array | string | number | true | false | null
//   json-object, json-array, json-string, json-number, json-integer, json-char
// Objects and arrays put exactly one json-ws between tokens ("{" ws members ws "}"), so the
// bound holds at every position.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "constraint/grammar.h"

namespace kiln::constraint {

inline constexpr int kMaxJsonWhitespace = 20;

void AddJsonBaseRules(GrammarSpec* spec);
inline Expr JsonWs() { return Ref("json-ws"); }

// Decimal integers in [min, max] (either side open when nullopt), no leading zeros, "-0" not
// produced. kInvalidArgument when the range is empty.
Result<Expr> IntegerRange(std::optional<int64_t> min, std::optional<int64_t> max);

// Rewrites an expression over a string's characters into one over its JSON encoding inside the
// quotes: literal '"', '\\' and control characters become escapes; classes lose those characters.
Expr JsonStringBody(const Expr& raw);

// A pattern for a JSON Schema "format" value, or nullopt when the format is not supported.
std::optional<std::string> FormatPattern(const std::string& format);

}  // namespace kiln::constraint
