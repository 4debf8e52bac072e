// Built-in filters, tests and Python methods of the chat-template interpreter, with Jinja2 /
// Python semantics (what transformers' chat template environment provides).
//
//   TRY_ASSIGN(Value upper, ApplyFilter("upper", Value("abc"), {}));   // "ABC"
//   TRY_ASSIGN(bool is_str, ApplyTest("string", Value("x"), {}));      // true
//   bool found; TRY_ASSIGN(Value parts, CallMethod(Value("a,b"), "split", args, &found));
//
// Filters: abs, capitalize, count, d, default, dictsort, e, escape, first, float, indent, int,
// items, join, last, length, list, lower, map, max, min, reject, rejectattr, replace, reverse,
// round, safe, select, selectattr, sort, string, sum, title, tojson, trim, unique, upper.
// Tests: boolean, callable, defined, divisibleby, eq/equalto/==, even, false, float, ge/>=,
// gt/>, in, integer, iterable, le/<=, lower, lt/<, mapping, ne/!=, none, number, odd, sameas,
// sequence, string, true, undefined, upper.
// Methods: str (capitalize, count, endswith, find, format, isalnum, isalpha, isdigit,
// islower, isspace, isupper, join, lower, lstrip, replace, rfind, rsplit, rstrip, split,
// splitlines, startswith, strip, title, upper), list (count, index), dict (get, items, keys,
// values). Methods that modify a list or dict (append, update, ...) fail with kInvalidArgument,
// as transformers' ImmutableSandboxedEnvironment does.
// An unknown filter or test fails with kUnsupported naming it. Pure functions.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "tokenizer/jinja_interpreter.h"
#include "tokenizer/jinja_value.h"

namespace kiln::tokenizer::jinja {

Result<Value> ApplyFilter(const std::string& name, const Value& input, const CallArgs& args);
Result<bool> ApplyTest(const std::string& name, const Value& input, const CallArgs& args);
Result<Value> CallMethod(const Value& object, const std::string& name, const CallArgs& args, bool* found);

// Global functions: range (at most max_range_length items), namespace, dict, raise_exception
// (fails with the template's message), strftime_now (formats `now`, or the current local time).
std::vector<std::pair<std::string, Value>> GlobalFunctions(int64_t max_range_length, std::optional<std::time_t> now);

// `a op b` for + - * / // % ** ~ with Python semantics (int/float promotion, floor division,
// str and list concatenation, str * int). Results larger than `limits` fail with kOutOfRange.
Result<Value> BinaryOperation(const std::string& op, const Value& a, const Value& b, const RenderLimits& limits);

// Python str.strip family: `chars` (nullptr = whitespace) removed from the left and/or right.
std::string StripChars(const std::string& s, const std::string* chars, bool left, bool right);

}  // namespace kiln::tokenizer::jinja
