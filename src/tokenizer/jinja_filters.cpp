// Jinja2 filters and tests (see jinja_builtins.h).
#include <algorithm>
#include <cmath>

#include "tokenizer/jinja_builtins.h"

namespace kiln::tokenizer::jinja {
namespace {

const Value* Arg(const CallArgs& args, size_t index, const char* name) {
  if (index < args.positional.size()) return &args.positional[index];
  return args.Keyword(name);
}

Error FilterError(const std::string& filter, const std::string& what) {
  return Error(ErrorCode::kInvalidArgument, "filter '" + filter + "': " + what);
}

// Looks up a dotted attribute path ("a.b") as Jinja's attribute= arguments do.
Value Attribute(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) && v.is_list()) {
      v = v.GetItem(Value(static_cast<int64_t>(std::stoll(part))));
    } else {
      v = v.GetAttr(part);
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return v;
}

// Arguments after the first `skip` positional ones, for select("test", arg...) style calls.
CallArgs Rest(const CallArgs& args, size_t skip) {
  CallArgs rest;
  for (size_t i = skip; i < args.positional.size(); ++i) rest.positional.push_back(args.positional[i]);
  return rest;
}

Result<ValueList> Sorted(ValueList items, bool reverse, bool case_sensitive, const Value* attribute) {
  auto key = [&](const Value& v) {
    Value k = attribute != nullptr && attribute->is_string() ? Attribute(v, attribute->AsString()) : v;
    if (!case_sensitive && k.is_string()) {
      std::string lower = k.AsString();
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return Value(lower);
    }
    return k;
  };
  std::optional<Error> error;
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    Result<bool> less = reverse ? key(b).Less(key(a)) : key(a).Less(key(b));
    if (!less.has_value()) {
      error = less.error();
      return false;
    }
    return *less;
  });
  if (error) return *error;
  return items;
}

Result<Value> SelectOrReject(const std::string& name, const Value& input, const CallArgs& args) {
  const bool by_attribute = name == "selectattr" || name == "rejectattr";
  const bool keep = name == "select" || name == "selectattr";
  if (!input.Truthy()) return Value(ValueList{});  // Jinja2 guards with "if value:"
  TRY_ASSIGN(ValueList items, input.Items());
  std::string attribute;
  size_t next = 0;
  if (by_attribute) {
    if (args.positional.empty() || !args.positional[0].is_string()) return FilterError(name, "needs an attribute name");
    attribute = args.positional[0].AsString();
    next = 1;
  }
  ValueList out;
  for (const Value& item : items) {
    const Value subject = by_attribute ? Attribute(item, attribute) : item;
    bool pass;
    if (next < args.positional.size()) {
      if (!args.positional[next].is_string()) return FilterError(name, "test name must be a string");
      TRY_ASSIGN(pass, ApplyTest(args.positional[next].AsString(), subject, Rest(args, next + 1)));
    } else {
      pass = subject.Truthy();
    }
    if (pass == keep) out.push_back(item);
  }
  return Value(std::move(out));
}

}  // namespace

Result<Value> ApplyFilter(const std::string& name, const Value& input, const CallArgs& args) {
  const Value* a0 = Arg(args, 0, "");
  if (name == "trim") {
    const Value* chars = Arg(args, 0, "chars");
    const std::string* set = chars != nullptr && chars->is_string() ? &chars->AsString() : nullptr;
    return Value(StripChars(input.Str(), set, true, true));
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    bool found = false;
    return CallMethod(Value(input.Str()), name, {}, &found);
  }
  if (name == "length" || name == "count") {
    if (input.is_undefined()) return Value(int64_t{0});
    const int64_t n = input.Length();
    if (n < 0) return FilterError(name, "object of type " + input.TypeName() + " has no length");
    return Value(n);
  }
  if (name == "default" || name == "d") {
    const Value* fallback = Arg(args, 0, "default_value");
    const Value* boolean = Arg(args, 1, "boolean");
    const bool use_default = input.is_undefined() || (boolean != nullptr && boolean->Truthy() && !input.Truthy());
    if (!use_default) return input;
    return fallback != nullptr ? *fallback : Value("");
  }
  if (name == "string") return input.is_string() ? input : Value(input.Str());
  if (name == "safe" || name == "e" || name == "escape") {
    if (name == "safe") return input;
    std::string out;
    for (char c : input.Str()) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return Value(out);
  }
  if (name == "join") {
    TRY_ASSIGN(ValueList items, input.Items());
    const Value* separator = Arg(args, 0, "d");
    const Value* attribute = Arg(args, 1, "attribute");
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0 && separator != nullptr) out += separator->Str();
      out += (attribute != nullptr && attribute->is_string() ? Attribute(items[i], attribute->AsString()) : items[i]).Str();
    }
    return Value(out);
  }
  if (name == "first" || name == "last") {
    TRY_ASSIGN(ValueList items, input.Items());
    if (items.empty()) return Value::Undefined("first of empty sequence");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") {
    TRY_ASSIGN(ValueList items, input.Items());
    return Value(std::move(items));
  }
  if (name == "reverse") {
    if (input.is_string()) {
      TRY_ASSIGN(ValueList chars, input.Items());
      std::string out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += it->AsString();
      return Value(out);
    }
    TRY_ASSIGN(ValueList items, input.Items());
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "items") {
    if (input.is_undefined()) return Value(ValueList{});
    if (!input.is_mapping()) return FilterError(name, "expects a mapping, found " + input.TypeName());
    ValueList out;
    for (const auto& [k, v] : input.AsDict().items) out.emplace_back(ValueList{Value(k), v});
    return Value(std::move(out));
  }
  if (name == "dictsort") {
    if (!input.is_mapping()) return FilterError(name, "expects a mapping, found " + input.TypeName());
    const Value* case_sensitive = Arg(args, 0, "case_sensitive");
    const Value* by = Arg(args, 1, "by");
    const Value* reverse = Arg(args, 2, "reverse");
    ValueList pairs;
    for (const auto& [k, v] : input.AsDict().items) pairs.emplace_back(ValueList{Value(k), v});
    const Value position(by != nullptr && by->is_string() && by->AsString() == "value" ? "1" : "0");
    TRY_ASSIGN(ValueList sorted, Sorted(std::move(pairs), reverse != nullptr && reverse->Truthy(),
                                        case_sensitive != nullptr && case_sensitive->Truthy(), &position));
    return Value(std::move(sorted));
  }
  if (name == "sort") {
    TRY_ASSIGN(ValueList items, input.Items());
    const Value* reverse = Arg(args, 0, "reverse");
    const Value* case_sensitive = Arg(args, 1, "case_sensitive");
    TRY_ASSIGN(ValueList sorted, Sorted(std::move(items), reverse != nullptr && reverse->Truthy(),
                                        case_sensitive != nullptr && case_sensitive->Truthy(), Arg(args, 2, "attribute")));
    return Value(std::move(sorted));
  }
  if (name == "unique") {
    TRY_ASSIGN(ValueList items, input.Items());
    ValueList out;
    for (const Value& v : items) {
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return o.Equals(v); })) out.push_back(v);
    }
    return Value(std::move(out));
  }
  if (name == "map") {
    if (!input.Truthy()) return Value(ValueList{});  // Jinja2 guards with "if value:"
    TRY_ASSIGN(ValueList items, input.Items());
    ValueList out;
    const Value* attribute = args.Keyword("attribute");
    for (const Value& item : items) {
      if (attribute != nullptr) {
        Value v = Attribute(item, attribute->Str());
        const Value* fallback = args.Keyword("default");
        out.push_back(v.is_undefined() && fallback != nullptr ? *fallback : v);
      } else {
        if (a0 == nullptr || !a0->is_string()) return FilterError(name, "needs a filter name or attribute=");
        TRY_ASSIGN(Value mapped, ApplyFilter(a0->AsString(), item, Rest(args, 1)));
        out.push_back(std::move(mapped));
      }
    }
    return Value(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    return SelectOrReject(name, input, args);
  }
  if (name == "tojson") {
    const Value* indent = Arg(args, 0, "indent");
    const Value* sort_keys = args.Keyword("sort_keys");
    TRY_ASSIGN(std::string json, input.ToJson(indent != nullptr && indent->is_number() ? static_cast<int>(indent->AsInt()) : -1,
                                              sort_keys != nullptr && sort_keys->Truthy()));
    return Value(json);
  }
  if (name == "int") {
    if (input.is_number() || input.kind() == Value::Kind::kBool) return Value(input.AsInt());
    try {
      return Value(static_cast<int64_t>(std::stoll(StripChars(input.Str(), nullptr, true, true))));
    } catch (...) {
      return a0 != nullptr ? *a0 : Value(int64_t{0});
    }
  }
  if (name == "float") {
    if (input.is_number()) return Value(input.AsFloat());
    try {
      return Value(std::stod(input.Str()));
    } catch (...) {
      return a0 != nullptr ? *a0 : Value(0.0);
    }
  }
  if (name == "abs") {
    if (input.kind() == Value::Kind::kInt) return Value(input.AsInt() < 0 ? -input.AsInt() : input.AsInt());
    if (input.is_number()) return Value(std::fabs(input.AsFloat()));
    return FilterError(name, "expects a number");
  }
  if (name == "round") {
    const Value* precision = Arg(args, 0, "precision");
    const double scale = std::pow(10.0, precision != nullptr && precision->is_number() ? precision->AsInt() : 0);
    return Value(std::round(input.AsFloat() * scale) / scale);
  }
  if (name == "sum" || name == "min" || name == "max") {
    TRY_ASSIGN(ValueList items, input.Items());
    if (name == "sum") {
      const Value* start = args.Keyword("start");
      Value total = start != nullptr ? *start : Value(int64_t{0});
      for (const Value& v : items) {
        if (!v.is_number() || !total.is_number()) return FilterError(name, "expects numbers");
        total = (v.kind() == Value::Kind::kFloat || total.kind() == Value::Kind::kFloat) ? Value(total.AsFloat() + v.AsFloat())
                                                                                         : Value(total.AsInt() + v.AsInt());
      }
      return total;
    }
    if (items.empty()) return Value::Undefined("empty sequence");
    Value best = items[0];
    for (const Value& v : items) {
      TRY_ASSIGN(bool less, v.Less(best));
      if (less == (name == "min")) {
        TRY_ASSIGN(bool equal_or_greater, best.Less(v));
        if (name == "min" || equal_or_greater) best = v;
      }
    }
    return best;
  }
  if (name == "replace") {
    bool found = false;
    return CallMethod(Value(input.Str()), "replace", args, &found);
  }
  if (name == "indent") {
    const Value* width = Arg(args, 0, "width");
    const Value* first = Arg(args, 1, "first");
    const std::string pad = width != nullptr && width->is_string() ? width->AsString()
                                                                   : std::string(width != nullptr ? width->AsInt() : 4, ' ');
    const std::string text = input.Str();
    std::string out;
    bool line_start = first != nullptr && first->Truthy();
    for (char c : text) {
      if (line_start && c != '\n') out += pad;
      line_start = false;
      out += c;
      if (c == '\n') line_start = true;
    }
    return Value(out);
  }
  return Error(ErrorCode::kUnsupported, "chat template filter '" + name + "' is not supported");
}

Result<bool> ApplyTest(const std::string& name, const Value& input, const CallArgs& args) {
  const Value* a0 = Arg(args, 0, "");
  using Kind = Value::Kind;
  if (name == "defined") return !input.is_undefined();
  if (name == "undefined") return input.is_undefined();
  if (name == "none") return input.is_none();
  if (name == "boolean") return input.kind() == Kind::kBool;
  if (name == "true") return input.kind() == Kind::kBool && input.AsBool();
  if (name == "false") return input.kind() == Kind::kBool && !input.AsBool();
  if (name == "integer") return input.kind() == Kind::kInt;
  if (name == "float") return input.kind() == Kind::kFloat;
  if (name == "number") return input.is_number() || input.kind() == Kind::kBool;
  if (name == "string") return input.is_string();
  if (name == "mapping") return input.kind() == Kind::kDict;
  if (name == "iterable") return input.is_string() || input.is_list() || input.is_mapping() || input.is_undefined();
  if (name == "sequence") return input.is_string() || input.is_list() || input.kind() == Kind::kDict;
  if (name == "callable") return input.is_callable();
  if (name == "odd" || name == "even") {
    if (input.kind() != Kind::kInt) return Error(ErrorCode::kInvalidArgument, "test '" + name + "' expects an integer");
    return (input.AsInt() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    if (a0 == nullptr || !a0->is_number() || a0->AsInt() == 0) return Error(ErrorCode::kInvalidArgument, "divisibleby needs a non-zero number");
    return input.AsInt() % a0->AsInt() == 0;
  }
  if (name == "lower" || name == "upper") {
    const std::string s = input.Str();
    return std::none_of(s.begin(), s.end(), [&](char c) { return name == "lower" ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z'); });
  }
  if (a0 == nullptr) return Error(ErrorCode::kInvalidArgument, "test '" + name + "' needs an argument");
  if (name == "eq" || name == "equalto" || name == "==") return input.Equals(*a0);
  if (name == "ne" || name == "!=") return !input.Equals(*a0);
  if (name == "sameas") {
    if (input.kind() != a0->kind()) return false;
    return (input.is_none() || input.kind() == Kind::kBool) ? input.Equals(*a0) : false;
  }
  if (name == "lt" || name == "<") return input.Less(*a0);
  if (name == "gt" || name == ">") return a0->Less(input);
  if (name == "le" || name == "<=") {
    TRY_ASSIGN(bool greater, a0->Less(input));
    return !greater;
  }
  if (name == "ge" || name == ">=") {
    TRY_ASSIGN(bool less, input.Less(*a0));
    return !less;
  }
  if (name == "in") {
    if (a0->is_string()) return input.is_string() && a0->AsString().find(input.AsString()) != std::string::npos;
    TRY_ASSIGN(ValueList items, a0->Items());
    return std::any_of(items.begin(), items.end(), [&](const Value& v) { return v.Equals(input); });
  }
  return Error(ErrorCode::kUnsupported, "chat template test '" + name + "' is not supported");
}

}  // namespace kiln::tokenizer::jinja
