// Python methods of str, list and dict values (see jinja_builtins.h).
#include <algorithm>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"

namespace kiln::tokenizer::jinja {
namespace {

const Value* Arg(const CallArgs& args, size_t index, const char* name) {
  if (index < args.positional.size()) return &args.positional[index];
  return args.Keyword(name);
}

Error TypeError(const std::string& what) { return Error(ErrorCode::kInvalidArgument, what); }

bool IsPythonSpace(char32_t c) { return IsUnicodeWhitespace(c) || (c >= 0x1C && c <= 0x1F); }

// Splits UTF-8 text into code points with their byte ranges.
struct CodePoint {
  char32_t value;
  size_t begin, end;
};
std::vector<CodePoint> CodePoints(const std::string& s) {
  std::vector<CodePoint> out;
  for (size_t pos = 0; pos < s.size();) {
    size_t n = Utf8SequenceLength(s, pos);
    const char32_t cp = n == 0 ? kReplacementChar : DecodeUtf8At(s, pos, n);
    if (n == 0) n = 1;
    out.push_back({cp, pos, pos + n});
    pos += n;
  }
  return out;
}

std::string AsciiCase(std::string s, bool upper) {
  for (char& c : s) {
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return s;
}

Value SplitWhitespace(const std::string& s, int64_t max_split) {
  ValueList parts;
  const auto cps = CodePoints(s);
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && IsPythonSpace(cps[i].value)) ++i;
    if (i == cps.size()) break;
    if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
      std::string rest = s.substr(cps[i].begin);
      parts.emplace_back(StripChars(rest, nullptr, false, true));
      break;
    }
    const size_t begin = cps[i].begin;
    while (i < cps.size() && !IsPythonSpace(cps[i].value)) ++i;
    parts.emplace_back(s.substr(begin, (i < cps.size() ? cps[i].begin : s.size()) - begin));
  }
  return Value(std::move(parts));
}

Result<Value> StringMethod(const std::string& s, const std::string& name, const CallArgs& args, bool* found) {
  *found = true;
  const Value* a0 = Arg(args, 0, "");
  auto string_arg = [&](size_t i, const char* n) -> const std::string* {
    const Value* v = Arg(args, i, n);
    return v != nullptr && v->is_string() ? &v->AsString() : nullptr;
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const std::string* chars = string_arg(0, "chars");
    return Value(StripChars(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "upper" || name == "lower") return Value(AsciiCase(s, name == "upper"));
  if (name == "capitalize") {
    std::string out = AsciiCase(s, false);
    if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 32);
    return Value(out);
  }
  if (name == "title") {
    std::string out = s;
    bool start = true;
    for (char& c : out) {
      const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (alpha) c = start ? static_cast<char>(std::toupper(c)) : static_cast<char>(std::tolower(c));
      start = !alpha;
    }
    return Value(out);
  }
  if (name == "startswith" || name == "endswith") {
    if (a0 == nullptr) return TypeError(name + "() takes a prefix");
    ValueList options = a0->is_list() ? a0->AsList() : ValueList{*a0};
    for (const Value& o : options) {
      if (!o.is_string()) return TypeError(name + "() argument must be str or a tuple of str");
      const std::string& p = o.AsString();
      const bool hit = name == "startswith" ? s.compare(0, p.size(), p) == 0
                                            : s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
      if (hit) return Value(true);
    }
    return Value(false);
  }
  if (name == "split" || name == "rsplit") {
    const Value* sep = Arg(args, 0, "sep");
    const Value* max = Arg(args, 1, "maxsplit");
    const int64_t max_split = max != nullptr && max->is_number() ? max->AsInt() : -1;
    if (sep == nullptr || sep->is_none()) return SplitWhitespace(s, name == "split" ? max_split : -1);
    if (!sep->is_string() || sep->AsString().empty()) return TypeError("split() separator must be a non-empty string");
    const std::string& d = sep->AsString();
    ValueList parts;
    if (name == "split") {
      size_t pos = 0;
      for (size_t hit; (max_split < 0 || static_cast<int64_t>(parts.size()) < max_split) &&
                       (hit = s.find(d, pos)) != std::string::npos;
           pos = hit + d.size()) {
        parts.emplace_back(s.substr(pos, hit - pos));
      }
      parts.emplace_back(s.substr(pos));
    } else {
      size_t end = s.size();
      while (max_split < 0 || static_cast<int64_t>(parts.size()) < max_split) {
        if (end < d.size()) break;
        const size_t hit = s.rfind(d, end - d.size());
        if (hit == std::string::npos) break;
        parts.insert(parts.begin(), Value(s.substr(hit + d.size(), end - hit - d.size())));
        end = hit;
      }
      parts.insert(parts.begin(), Value(s.substr(0, end)));
    }
    return Value(std::move(parts));
  }
  if (name == "splitlines") {
    ValueList lines;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' || s[i] == '\r') {
        lines.emplace_back(s.substr(start, i - start));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        start = i + 1;
      }
    }
    if (start < s.size()) lines.emplace_back(s.substr(start));
    return Value(std::move(lines));
  }
  if (name == "replace") {
    const std::string* from = string_arg(0, "old");
    const std::string* to = string_arg(1, "new");
    const Value* count = Arg(args, 2, "count");
    if (from == nullptr || to == nullptr) return TypeError("replace() takes two strings");
    int64_t remaining = count != nullptr && count->is_number() ? count->AsInt() : -1;
    std::string out;
    if (from->empty()) return Value(s);  // Python inserts between characters; not used by templates
    size_t pos = 0;
    for (size_t hit; remaining != 0 && (hit = s.find(*from, pos)) != std::string::npos; pos = hit + from->size()) {
      out += s.substr(pos, hit - pos) + *to;
      if (remaining > 0) --remaining;
    }
    return Value(out + s.substr(pos));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "count") {
    const std::string* sub = string_arg(0, "sub");
    if (sub == nullptr) return TypeError(name + "() takes a string");
    if (name == "count") {
      if (sub->empty()) return Value(Utf8Length(s) + 1);
      int64_t n = 0;
      for (size_t pos = s.find(*sub); pos != std::string::npos; pos = s.find(*sub, pos + sub->size())) ++n;
      return Value(n);
    }
    const size_t hit = name == "rfind" ? s.rfind(*sub) : s.find(*sub);
    if (hit == std::string::npos) {
      if (name == "index") return TypeError("substring not found");
      return Value(int64_t{-1});
    }
    return Value(Utf8Length(std::string_view(s).substr(0, hit)));
  }
  if (name == "join") {
    if (a0 == nullptr) return TypeError("join() takes an iterable");
    TRY_ASSIGN(ValueList items, a0->Items());
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) return TypeError("join() expects strings, found " + items[i].TypeName());
      if (i > 0) out += s;
      out += items[i].AsString();
    }
    return Value(out);
  }
  if (name == "format") {
    std::string out;
    size_t next = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '}') {
        if (next >= args.positional.size()) return TypeError("format(): not enough arguments");
        out += args.positional[next++].Str();
        ++i;
      } else {
        out += s[i];
      }
    }
    return Value(out);
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper") {
    if (s.empty()) return Value(false);
    bool cased = false;
    for (const CodePoint& cp : CodePoints(s)) {
      const char32_t c = cp.value;
      const bool digit = c >= '0' && c <= '9';
      const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
      if (name == "isdigit" && !digit) return Value(false);
      if (name == "isalpha" && !alpha) return Value(false);
      if (name == "isalnum" && !(alpha || digit)) return Value(false);
      if (name == "isspace" && !IsPythonSpace(c)) return Value(false);
      if (name == "islower" && c >= 'A' && c <= 'Z') return Value(false);
      if (name == "isupper" && c >= 'a' && c <= 'z') return Value(false);
      cased = cased || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }
    return Value((name != "islower" && name != "isupper") || cased);
  }
  *found = false;
  return Value();
}

Result<Value> ListMethod(const Value& list, const std::string& name, const CallArgs& args, bool* found) {
  *found = true;
  ValueList& items = list.MutableList();
  const Value* a0 = Arg(args, 0, "");
  if (name == "append") {
    if (a0 == nullptr) return TypeError("append() takes one argument");
    items.push_back(*a0);
    return Value::None();
  }
  if (name == "extend") {
    if (a0 == nullptr) return TypeError("extend() takes one argument");
    TRY_ASSIGN(ValueList more, a0->Items());
    items.insert(items.end(), more.begin(), more.end());
    return Value::None();
  }
  if (name == "insert") {
    const Value* value = Arg(args, 1, "");
    if (a0 == nullptr || value == nullptr || !a0->is_number()) return TypeError("insert() takes an index and a value");
    int64_t i = a0->AsInt();
    const auto n = static_cast<int64_t>(items.size());
    i = std::clamp(i < 0 ? i + n : i, int64_t{0}, n);
    items.insert(items.begin() + i, *value);
    return Value::None();
  }
  if (name == "pop") {
    if (items.empty()) return TypeError("pop from empty list");
    int64_t i = a0 != nullptr && a0->is_number() ? a0->AsInt() : -1;
    const auto n = static_cast<int64_t>(items.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return TypeError("pop index out of range");
    Value v = items[i];
    items.erase(items.begin() + i);
    return v;
  }
  if (name == "index" || name == "count") {
    if (a0 == nullptr) return TypeError(name + "() takes one argument");
    int64_t count = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].Equals(*a0)) {
        if (name == "index") return Value(static_cast<int64_t>(i));
        ++count;
      }
    }
    if (name == "index") return TypeError("value is not in list");
    return Value(count);
  }
  *found = false;
  return Value();
}

Result<Value> DictMethod(const Value& dict, const std::string& name, const CallArgs& args, bool* found) {
  *found = true;
  const Value* a0 = Arg(args, 0, "");
  if (name == "get") {
    if (a0 == nullptr || !a0->is_string()) return Value::None();
    const Value* v = dict.AsDict().Find(a0->AsString());
    if (v != nullptr) return *v;
    const Value* fallback = Arg(args, 1, "default");
    return fallback != nullptr ? *fallback : Value::None();
  }
  if (name == "items" || name == "keys" || name == "values") {
    ValueList out;
    for (const auto& [k, v] : dict.AsDict().items) {
      if (name == "items") out.emplace_back(ValueList{Value(k), v});
      if (name == "keys") out.emplace_back(k);
      if (name == "values") out.push_back(v);
    }
    return Value(std::move(out));
  }
  if (name == "update") {
    if (a0 != nullptr && a0->is_mapping()) {
      for (const auto& [k, v] : a0->AsDict().items) dict.MutableDict().Set(k, v);
    }
    for (const auto& [k, v] : args.keyword) dict.MutableDict().Set(k, v);
    return Value::None();
  }
  if (name == "pop" || name == "setdefault") {
    if (a0 == nullptr || !a0->is_string()) return TypeError(name + "() takes a string key");
    auto& items = dict.MutableDict().items;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].first == a0->AsString()) {
        Value v = items[i].second;
        if (name == "pop") items.erase(items.begin() + static_cast<std::ptrdiff_t>(i));
        return v;
      }
    }
    const Value* fallback = Arg(args, 1, "default");
    if (name == "setdefault") {
      Value v = fallback != nullptr ? *fallback : Value::None();
      dict.MutableDict().Set(a0->AsString(), v);
      return v;
    }
    if (fallback == nullptr) return TypeError("pop(): key '" + a0->AsString() + "' not found");
    return *fallback;
  }
  *found = false;
  return Value();
}

}  // namespace

std::string StripChars(const std::string& s, const std::string* chars, bool left, bool right) {
  const auto cps = CodePoints(s);
  std::vector<CodePoint> strip_set;
  if (chars != nullptr) strip_set = CodePoints(*chars);
  auto strip = [&](char32_t c) {
    if (chars == nullptr) return IsPythonSpace(c);
    return std::any_of(strip_set.begin(), strip_set.end(), [&](const CodePoint& x) { return x.value == c; });
  };
  size_t begin = 0, end = cps.size();
  if (left) {
    while (begin < end && strip(cps[begin].value)) ++begin;
  }
  if (right) {
    while (end > begin && strip(cps[end - 1].value)) --end;
  }
  if (begin == end) return "";
  return s.substr(cps[begin].begin, cps[end - 1].end - cps[begin].begin);
}

Result<Value> CallMethod(const Value& object, const std::string& name, const CallArgs& args, bool* found) {
  *found = false;
  // transformers renders in an ImmutableSandboxedEnvironment: templates may not modify lists or
  // dicts (namespace attributes are the way to keep state).
  static const char* kMutating[] = {"append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault", "popitem"};
  if (object.is_list() || object.kind() == Value::Kind::kDict) {
    for (const char* m : kMutating) {
      if (name == m) {
        return Error(ErrorCode::kInvalidArgument, "chat templates may not modify a " + object.TypeName() + " ('" + name +
                                                      "'), as in transformers' immutable sandbox");
      }
    }
  }
  if (object.is_string()) return StringMethod(object.AsString(), name, args, found);
  if (object.is_list()) return ListMethod(object, name, args, found);
  if (object.kind() == Value::Kind::kDict) return DictMethod(object, name, args, found);
  return Value();
}

}  // namespace kiln::tokenizer::jinja
