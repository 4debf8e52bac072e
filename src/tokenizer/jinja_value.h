// Values of the chat-template interpreter (jinja_interpreter.h): the Python objects a Jinja2
// template sees — None, bool, int, float, str, list, dict, namespace, callables — with Python's
// str()/repr(), truthiness, equality and ordering, so that rendered text matches Jinja2 exactly.
//
//   Value v = Value::FromJson(nlohmann::ordered_json::parse(R"({"role": "user"})"));
//   v.GetItem(Value("role")).AsString();   // "user"
//   Value(1.5).Str();                      // "1.5" ; Value(true).Str() == "True"
//
// Lists, dicts and namespaces are shared by reference like Python objects (copying a Value
// copies the reference). Dicts keep insertion order; keys are strings (JSON-like data only).
// Not thread-safe: one interpreter run owns its values.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace kiln::tokenizer::jinja {

class Value;
using ValueList = std::vector<Value>;

// An ordered dict with string keys.
struct ValueDict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  void Set(const std::string& key, Value value);
};

// Arguments of a call: positional then keyword.
struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;
  const Value* Keyword(std::string_view name) const;
};

using NativeFunction = std::function<Result<Value>(const CallArgs&)>;
struct Macro;  // defined by the interpreter

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction, kMacro };

  Value() = default;  // undefined
  static Value Undefined(std::string name = "") {
    Value v;
    v.string_ = std::move(name);
    return v;
  }
  static Value None() { return Value(Kind::kNone); }
  Value(bool b) : kind_(Kind::kBool), int_(b) {}                  // NOLINT
  Value(int64_t i) : kind_(Kind::kInt), int_(i) {}                // NOLINT
  Value(int i) : kind_(Kind::kInt), int_(i) {}                    // NOLINT
  Value(double d) : kind_(Kind::kFloat), float_(d) {}             // NOLINT
  Value(std::string s) : kind_(Kind::kString), string_(std::move(s)) {}  // NOLINT
  Value(const char* s) : kind_(Kind::kString), string_(s) {}      // NOLINT
  Value(ValueList list) : kind_(Kind::kList), list_(std::make_shared<ValueList>(std::move(list))) {}  // NOLINT
  Value(ValueDict dict) : kind_(Kind::kDict), dict_(std::make_shared<ValueDict>(std::move(dict))) {}  // NOLINT
  static Value Namespace(ValueDict attributes);
  static Value Function(std::string name, NativeFunction fn);
  static Value FromMacro(std::shared_ptr<const Macro> macro);
  static Value FromJson(const nlohmann::ordered_json& json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kFunction || kind_ == Kind::kMacro; }

  bool AsBool() const { return int_ != 0; }
  int64_t AsInt() const { return kind_ == Kind::kFloat ? static_cast<int64_t>(float_) : int_; }
  double AsFloat() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& AsString() const { return string_; }  // also the name of an undefined
  const ValueList& AsList() const { return *list_; }
  ValueList& MutableList() const { return *list_; }
  const ValueDict& AsDict() const { return *dict_; }
  ValueDict& MutableDict() const { return *dict_; }
  const std::string& function_name() const { return string_; }
  const NativeFunction& function() const { return *function_; }
  const std::shared_ptr<const Macro>& macro() const { return macro_; }

  // Python truthiness.
  bool Truthy() const;
  // Python str(): what {{ value }} prints. Undefined prints "".
  std::string Str() const;
  // Python repr() (used for items inside a printed list or dict).
  std::string Repr() const;
  // JSON text (json.dumps with ensure_ascii=False; `indent` < 0 = compact with ", " and ": ").
  // Fails for callables and undefined.
  Result<std::string> ToJson(int indent, bool sort_keys) const;
  // Python ==.
  bool Equals(const Value& other) const;
  // Python <, for numbers and strings (and lists element-wise); error otherwise.
  Result<bool> Less(const Value& other) const;
  // Iteration as in a for loop: list items, string characters, dict keys. Error otherwise.
  Result<ValueList> Items() const;
  // obj[key]: list/string by (negative) index, dict by key. Undefined when missing.
  Value GetItem(const Value& key) const;
  // obj.name: dict item or namespace attribute; undefined when missing.
  Value GetAttr(const std::string& name) const;
  // Number of items (list, dict, string in characters); -1 for other kinds.
  int64_t Length() const;
  std::string TypeName() const;

 private:
  explicit Value(Kind kind) : kind_(kind) {}
  Kind kind_ = Kind::kUndefined;
  int64_t int_ = 0;
  double float_ = 0;
  std::string string_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<NativeFunction> function_;
  std::shared_ptr<const Macro> macro_;
};

// Python's repr of a float (shortest round-trip, "1.0", "1e+20", "inf").
std::string FloatRepr(double value);
// Number of Unicode characters in UTF-8 text.
int64_t Utf8Length(std::string_view text);

}  // namespace kiln::tokenizer::jinja
