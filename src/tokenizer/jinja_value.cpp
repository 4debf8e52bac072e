#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace kiln::tokenizer::jinja {

const Value* ValueDict::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value* ValueDict::Find(std::string_view key) {
  for (auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void ValueDict::Set(const std::string& key, Value value) {
  if (Value* existing = Find(key)) {
    *existing = std::move(value);
  } else {
    items.emplace_back(key, std::move(value));
  }
}

const Value* CallArgs::Keyword(std::string_view name) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value Value::Namespace(ValueDict attributes) {
  Value v(std::move(attributes));
  v.kind_ = Kind::kNamespace;
  return v;
}

Value Value::Function(std::string name, NativeFunction fn) {
  Value v(Kind::kFunction);
  v.string_ = std::move(name);
  v.function_ = std::make_shared<NativeFunction>(std::move(fn));
  return v;
}

Value Value::FromMacro(std::shared_ptr<const Macro> macro) {
  Value v(Kind::kMacro);
  v.macro_ = std::move(macro);
  return v;
}

Value Value::FromJson(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return None();
    case nlohmann::ordered_json::value_t::boolean:
      return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float:
      return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList list;
      for (const auto& item : j) list.push_back(FromJson(item));
      return Value(std::move(list));
    }
    case nlohmann::ordered_json::value_t::object: {
      ValueDict dict;
      for (const auto& [k, v] : j.items()) dict.items.emplace_back(k, FromJson(v));
      return Value(std::move(dict));
    }
    default:
      return None();
  }
}

std::string FloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  std::string sci(buf, result.ptr);
  // sci = [-]d[.ddd]e[+-]XX
  const bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exponent = std::stoi(sci.substr(e + 1));
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<size_t>(exponent) + 1 >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(exponent) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, exponent + 1) + "." + digits.substr(exponent + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exp_buf[16];
  std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out + exp_buf;
}

int64_t Utf8Length(std::string_view text) {
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return int_ != 0;
    case Kind::kFloat:
      return float_ != 0;
    case Kind::kString:
      return !string_.empty();
    case Kind::kList:
      return !list_->empty();
    case Kind::kDict:
      return !dict_->items.empty();
    default:
      return true;
  }
}

std::string Value::Str() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return string_;
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return int_ ? "True" : "False";
    case Kind::kInt:
      return std::to_string(int_);
    case Kind::kFloat:
      return FloatRepr(float_);
    default:
      return Repr();
  }
}

namespace {

std::string PythonStringRepr(const std::string& s) {
  const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char quote = use_double ? '"' : '\'';
  std::string out(1, quote);
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == quote || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += quote;
  return out;
}

void JsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (u < 0x20 || u == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", u);
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

Status AppendJson(const Value& v, int indent, bool sort_keys, int depth, std::string* out) {
  if (depth > 512) return Error(ErrorCode::kInvalidArgument, "tojson: value nested too deeply");
  auto newline = [&](int level) {
    if (indent < 0) return;
    out->push_back('\n');
    out->append(static_cast<size_t>(indent) * level, ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kNone: *out += "null"; return Status::Ok();
    case Value::Kind::kBool: *out += v.AsBool() ? "true" : "false"; return Status::Ok();
    case Value::Kind::kInt: *out += std::to_string(v.AsInt()); return Status::Ok();
    case Value::Kind::kFloat: {
      const double d = v.AsFloat();
      *out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d);
      return Status::Ok();
    }
    case Value::Kind::kString: JsonString(v.AsString(), out); return Status::Ok();
    case Value::Kind::kList: {
      if (v.AsList().empty()) {
        *out += "[]";
        return Status::Ok();
      }
      out->push_back('[');
      bool first = true;
      for (const Value& item : v.AsList()) {
        if (!first) *out += indent < 0 ? ", " : ",";
        first = false;
        newline(depth + 1);
        TRY(AppendJson(item, indent, sort_keys, depth + 1, out));
      }
      newline(depth);
      out->push_back(']');
      return Status::Ok();
    }
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& item : v.AsDict().items) items.push_back(&item);
      if (sort_keys) std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      if (items.empty()) {
        *out += "{}";
        return Status::Ok();
      }
      out->push_back('{');
      bool first = true;
      for (const auto* item : items) {
        if (!first) *out += indent < 0 ? ", " : ",";
        first = false;
        newline(depth + 1);
        JsonString(item->first, out);
        *out += ": ";
        TRY(AppendJson(item->second, indent, sort_keys, depth + 1, out));
      }
      newline(depth);
      out->push_back('}');
      return Status::Ok();
    }
    default:
      return Error(ErrorCode::kInvalidArgument, "tojson: cannot serialize a value of type " + v.TypeName());
  }
}

}  // namespace

std::string Value::Repr() const {
  switch (kind_) {
    case Kind::kString:
      return PythonStringRepr(string_);
    case Kind::kList: {
      std::string out = "[";
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i > 0) out += ", ";
        out += (*list_)[i].Repr();
      }
      return out + "]";
    }
    case Kind::kDict: {
      std::string out = "{";
      for (size_t i = 0; i < dict_->items.size(); ++i) {
        if (i > 0) out += ", ";
        out += PythonStringRepr(dict_->items[i].first) + ": " + dict_->items[i].second.Repr();
      }
      return out + "}";
    }
    case Kind::kNamespace:
      return "<Namespace>";
    case Kind::kFunction:
    case Kind::kMacro:
      return "<function>";
    case Kind::kUndefined:
      return "Undefined";
    default:
      return Str();
  }
}

Result<std::string> Value::ToJson(int indent, bool sort_keys) const {
  std::string out;
  TRY(AppendJson(*this, indent, sort_keys, 0, &out));
  return out;
}

bool Value::Equals(const Value& other) const {
  if (is_number() || kind_ == Kind::kBool) {
    if (!(other.is_number() || other.kind_ == Kind::kBool)) return false;
    if (kind_ == Kind::kFloat || other.kind_ == Kind::kFloat) return AsFloat() == other.AsFloat();
    return int_ == other.int_;
  }
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return string_ == other.string_;
    case Kind::kList: {
      if (list_->size() != other.list_->size()) return false;
      for (size_t i = 0; i < list_->size(); ++i) {
        if (!(*list_)[i].Equals((*other.list_)[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      if (dict_->items.size() != other.dict_->items.size()) return false;
      for (const auto& [k, v] : dict_->items) {
        const Value* o = other.dict_->Find(k);
        if (o == nullptr || !v.Equals(*o)) return false;
      }
      return true;
    }
    default:
      return dict_ == other.dict_ && function_ == other.function_ && macro_ == other.macro_;
  }
}

Result<bool> Value::Less(const Value& other) const {
  if ((is_number() || kind_ == Kind::kBool) && (other.is_number() || other.kind_ == Kind::kBool)) {
    if (kind_ == Kind::kFloat || other.kind_ == Kind::kFloat) return AsFloat() < other.AsFloat();
    return int_ < other.int_;
  }
  if (is_string() && other.is_string()) return string_ < other.string_;
  if (is_list() && other.is_list()) {
    const size_t n = std::min(list_->size(), other.list_->size());
    for (size_t i = 0; i < n; ++i) {
      TRY_ASSIGN(bool less, (*list_)[i].Less((*other.list_)[i]));
      if (less) return true;
      TRY_ASSIGN(bool greater, (*other.list_)[i].Less((*list_)[i]));
      if (greater) return false;
    }
    return list_->size() < other.list_->size();
  }
  return Error(ErrorCode::kInvalidArgument, "cannot compare " + TypeName() + " with " + other.TypeName());
}

Result<ValueList> Value::Items() const {
  switch (kind_) {
    case Kind::kList:
      return *list_;
    case Kind::kDict:
    case Kind::kNamespace: {
      ValueList keys;
      for (const auto& item : dict_->items) keys.emplace_back(item.first);
      return keys;
    }
    case Kind::kString: {
      ValueList chars;
      for (size_t i = 0; i < string_.size();) {
        size_t n = 1;
        while (i + n < string_.size() && (static_cast<unsigned char>(string_[i + n]) & 0xC0) == 0x80) ++n;
        chars.emplace_back(string_.substr(i, n));
        i += n;
      }
      return chars;
    }
    default:
      return Error(ErrorCode::kInvalidArgument, TypeName() + " is not iterable");
  }
}

Value Value::GetItem(const Value& key) const {
  if (kind_ == Kind::kDict || kind_ == Kind::kNamespace) {
    if (!key.is_string()) return Undefined(key.Str());
    const Value* v = dict_->Find(key.AsString());
    return v != nullptr ? *v : Undefined(key.AsString());
  }
  if ((kind_ == Kind::kList || kind_ == Kind::kString) && (key.kind_ == Kind::kInt || key.kind_ == Kind::kBool)) {
    if (kind_ == Kind::kList) {
      int64_t i = key.int_;
      const auto n = static_cast<int64_t>(list_->size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Undefined("[" + std::to_string(key.int_) + "]");
      return (*list_)[i];
    }
    auto chars = Items();
    return chars.has_value() ? Value(chars->size() > 0 ? ValueList(*chars) : ValueList()).GetItem(key) : Undefined();
  }
  return Undefined(key.Str());
}

Value Value::GetAttr(const std::string& name) const {
  if (kind_ == Kind::kDict || kind_ == Kind::kNamespace) {
    const Value* v = dict_->Find(name);
    if (v != nullptr) return *v;
  }
  return Undefined(name);
}

int64_t Value::Length() const {
  switch (kind_) {
    case Kind::kString: return Utf8Length(string_);
    case Kind::kList: return static_cast<int64_t>(list_->size());
    case Kind::kDict:
    case Kind::kNamespace: return static_cast<int64_t>(dict_->items.size());
    default: return -1;
  }
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNone: return "none";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "string";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "namespace";
    default: return "function";
  }
}

}  // namespace kiln::tokenizer::jinja
