#include "tokenizer/jinja_interpreter.h"

#include <cmath>
#include <unordered_map>

#include "tokenizer/jinja_builtins.h"

namespace kiln::tokenizer::jinja {
namespace {

struct Scope {
  std::unordered_map<std::string, Value> vars;
  const Scope* parent = nullptr;
};

enum class Flow { kNormal, kBreak, kContinue };

Error Undefined(const Value& v) {
  return Error(ErrorCode::kInvalidArgument, "'" + (v.AsString().empty() ? std::string("value") : v.AsString()) + "' is undefined");
}

Error TypeError(int line, const std::string& what) {
  return Error(ErrorCode::kInvalidArgument, "chat template line " + std::to_string(line) + ": " + what);
}

class Interpreter {
 public:
  Interpreter(std::shared_ptr<const Program> program, const RenderOptions& options)
      : program_(std::move(program)), options_(options) {}

  Result<std::string> Run(const ValueDict& context) {
    InstallGlobals(&builtins_);
    Scope globals;
    globals.parent = &builtins_;
    for (const auto& [k, v] : context.items) globals.vars[k] = v;
    globals_ = &globals;
    std::string out;
    TRY(Exec(program_->body, &globals, &out));
    return out;
  }

 private:
  Status Step() {
    if (++steps_ > options_.limits.max_steps) {
      return Error(ErrorCode::kOutOfRange, "chat template exceeded " + std::to_string(options_.limits.max_steps) + " steps");
    }
    return Status::Ok();
  }
  Status CheckSize(size_t bytes) const {
    if (bytes > options_.limits.max_output_bytes) {
      return Error(ErrorCode::kOutOfRange, "chat template output exceeds " + std::to_string(options_.limits.max_output_bytes) + " bytes");
    }
    return Status::Ok();
  }
  Status Write(std::string* out, std::string_view text) {
    TRY(CheckSize(out->size() + text.size()));
    out->append(text);
    return Status::Ok();
  }

  static Value Lookup(const std::string& name, const Scope* scope) {
    for (const Scope* s = scope; s != nullptr; s = s->parent) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return it->second;
    }
    return Value::Undefined(name);
  }

  void InstallGlobals(Scope* scope) {
    for (auto& [name, fn] : GlobalFunctions(options_.limits.max_range_length, options_.now)) scope->vars[name] = std::move(fn);
  }

  // Statement and expression nesting summed over macro calls bounds the C++ stack.
  static constexpr int kMaxNesting = 1000;
  Status Enter() {
    if (++nesting_ > kMaxNesting) {
      return Error(ErrorCode::kOutOfRange, "chat template nests blocks, expressions and calls deeper than " +
                                               std::to_string(kMaxNesting));
    }
    return Status::Ok();
  }

  Result<Flow> Exec(const StmtList& body, Scope* scope, std::string* out) {
    TRY(Enter());
    for (const StmtPtr& stmt : body) {
      Result<Flow> flow = ExecStmt(*stmt, scope, out);
      if (!flow.has_value() || *flow != Flow::kNormal) {
        --nesting_;
        return flow;
      }
    }
    --nesting_;
    return Flow::kNormal;
  }

  Result<std::string> RenderBody(const StmtList& body, Scope* scope) {
    std::string text;
    TRY_ASSIGN(Flow flow, Exec(body, scope, &text));
    (void)flow;
    return text;
  }

  Result<Flow> ExecStmt(const Stmt& stmt, Scope* scope, std::string* out) {
    TRY(Step());
    switch (stmt.kind) {
      case StmtKind::kText:
        TRY(Write(out, stmt.text));
        return Flow::kNormal;
      case StmtKind::kOutput: {
        TRY_ASSIGN(Value v, Eval(*stmt.expr, scope));
        TRY(Write(out, v.Str()));
        return Flow::kNormal;
      }
      case StmtKind::kIf:
        for (const auto& [condition, body] : stmt.branches) {
          bool take = true;
          if (condition != nullptr) {
            TRY_ASSIGN(Value c, Eval(*condition, scope));
            take = c.Truthy();
          }
          if (take) return Exec(body, scope, out);
        }
        return Flow::kNormal;
      case StmtKind::kFor:
        return ExecFor(stmt, scope, out);
      case StmtKind::kSet: {
        TRY_ASSIGN(Value value, Eval(*stmt.expr, scope));
        if (!stmt.attribute.empty()) {
          Value object = Lookup(stmt.targets[0], scope);
          if (object.kind() != Value::Kind::kNamespace) {
            return TypeError(stmt.line, "can only set attributes of a namespace() ('" + stmt.targets[0] + "' is " +
                                            object.TypeName() + ")");
          }
          object.MutableDict().Set(stmt.attribute, std::move(value));
          return Flow::kNormal;
        }
        return Assign(stmt.targets, value, scope, stmt.line);
      }
      case StmtKind::kSetBlock: {
        TRY_ASSIGN(std::string text, RenderBody(stmt.body, scope));
        Value value(std::move(text));
        if (stmt.filter != nullptr) {
          TRY_ASSIGN(value, ApplyFilterChain(*stmt.filter, value, scope));
        }
        scope->vars[stmt.targets[0]] = std::move(value);
        return Flow::kNormal;
      }
      case StmtKind::kMacro: {
        auto macro = std::make_shared<Macro>();
        macro->program = program_;
        macro->stmt = &stmt;
        scope->vars[stmt.text] = Value::FromMacro(std::move(macro));
        return Flow::kNormal;
      }
      case StmtKind::kFilterBlock: {
        TRY_ASSIGN(std::string text, RenderBody(stmt.body, scope));
        TRY_ASSIGN(Value value, ApplyFilterChain(*stmt.filter, Value(std::move(text)), scope));
        TRY(Write(out, value.Str()));
        return Flow::kNormal;
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  Result<Flow> Assign(const std::vector<std::string>& targets, const Value& value, Scope* scope, int line) {
    if (targets.size() == 1) {
      scope->vars[targets[0]] = value;
      return Flow::kNormal;
    }
    if (!value.is_list() || value.AsList().size() != targets.size()) {
      return TypeError(line, "cannot unpack " + value.TypeName() + " into " + std::to_string(targets.size()) + " names");
    }
    for (size_t i = 0; i < targets.size(); ++i) scope->vars[targets[i]] = value.AsList()[i];
    return Flow::kNormal;
  }

  Result<Flow> ExecFor(const Stmt& stmt, Scope* scope, std::string* out) {
    TRY_ASSIGN(Value iterable, Eval(*stmt.expr, scope));
    ValueList items;
    if (!iterable.is_undefined()) {
      TRY_ASSIGN(items, iterable.Items());
    }
    if (stmt.condition != nullptr) {  // {% for x in xs if cond %}: filter first, loop.length counts kept
      ValueList kept;
      for (const Value& item : items) {
        TRY(Step());
        Scope probe;
        probe.parent = scope;
        TRY(Assign(stmt.targets, item, &probe, stmt.line));
        TRY_ASSIGN(Value keep, Eval(*stmt.condition, &probe));
        if (keep.Truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const auto length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      TRY(Step());
      Scope body;
      body.parent = scope;
      TRY(Assign(stmt.targets, items[i], &body, stmt.line));
      ValueDict loop;
      loop.Set("index", Value(i + 1));
      loop.Set("index0", Value(i));
      loop.Set("revindex", Value(length - i));
      loop.Set("revindex0", Value(length - i - 1));
      loop.Set("first", Value(i == 0));
      loop.Set("last", Value(i == length - 1));
      loop.Set("length", Value(length));
      loop.Set("depth", Value(int64_t{1}));
      loop.Set("depth0", Value(int64_t{0}));
      loop.Set("previtem", i > 0 ? items[i - 1] : Value::Undefined("previtem"));
      loop.Set("nextitem", i + 1 < length ? items[i + 1] : Value::Undefined("nextitem"));
      loop.Set("cycle", Value::Function("cycle", [i](const CallArgs& args) -> Result<Value> {
        if (args.positional.empty()) return Error(ErrorCode::kInvalidArgument, "loop.cycle() needs arguments");
        return args.positional[static_cast<size_t>(i) % args.positional.size()];
      }));
      body.vars["loop"] = Value(std::move(loop));
      TRY_ASSIGN(Flow flow, Exec(stmt.body, &body, out));
      if (flow == Flow::kBreak) break;
    }
    if (length == 0 && !stmt.else_body.empty()) {
      Scope body;
      body.parent = scope;
      return Exec(stmt.else_body, &body, out);
    }
    return Flow::kNormal;
  }

  // Applies a chain of kFilter nodes whose innermost input is null to `input`.
  Result<Value> ApplyFilterChain(const Expr& filter, const Value& input, Scope* scope) {
    Value value = input;
    if (filter.children[0] != nullptr) {
      TRY_ASSIGN(value, ApplyFilterChain(*filter.children[0], input, scope));
    }
    TRY_ASSIGN(CallArgs args, EvalArgs(filter, scope, 1));
    return ApplyFilter(filter.name, value, args);
  }

  Result<CallArgs> EvalArgs(const Expr& e, Scope* scope, size_t first) {
    CallArgs args;
    for (size_t i = first; i < e.children.size(); ++i) {
      TRY_ASSIGN(Value v, Eval(*e.children[i], scope));
      args.positional.push_back(std::move(v));
    }
    for (const auto& [name, expr] : e.kwargs) {
      TRY_ASSIGN(Value v, Eval(*expr, scope));
      args.keyword.emplace_back(name, std::move(v));
    }
    return args;
  }

  Result<Value> CallValue(const Value& callee, const CallArgs& args, int line) {
    TRY(Step());
    if (callee.kind() == Value::Kind::kFunction) return callee.function()(args);
    if (callee.kind() == Value::Kind::kMacro) return CallMacro(*callee.macro(), args, line);
    if (callee.is_undefined()) return Undefined(callee);
    return TypeError(line, callee.TypeName() + " is not callable");
  }

  Result<Value> CallMacro(const Macro& macro, const CallArgs& args, int line) {
    const Stmt& def = *macro.stmt;
    if (depth_ >= options_.limits.max_call_depth) {
      return Error(ErrorCode::kOutOfRange, "chat template macro calls nested deeper than " +
                                               std::to_string(options_.limits.max_call_depth));
    }
    if (args.positional.size() > def.params.size()) {
      return TypeError(line, "macro '" + def.text + "' takes " + std::to_string(def.params.size()) + " arguments");
    }
    Scope scope;
    scope.parent = globals_;
    for (const auto& keyword : args.keyword) {
      const bool known = std::any_of(def.params.begin(), def.params.end(),
                                     [&](const auto& p) { return p.first == keyword.first; });
      if (!known) return TypeError(line, "macro '" + def.text + "' has no parameter '" + keyword.first + "'");
    }
    for (size_t i = 0; i < def.params.size(); ++i) {
      const auto& [name, default_value] = def.params[i];
      if (i < args.positional.size()) {
        scope.vars[name] = args.positional[i];
      } else if (const Value* kw = args.Keyword(name)) {
        scope.vars[name] = *kw;
      } else if (default_value != nullptr) {
        TRY_ASSIGN(scope.vars[name], Eval(*default_value, &scope));
      } else {
        scope.vars[name] = Value::Undefined(name);
      }
    }
    ++depth_;
    Result<std::string> text = RenderBody(def.body, &scope);
    --depth_;
    if (!text.has_value()) return text.error();
    return Value(std::move(text).value());
  }

  Result<Value> Slice(const Expr& e, Scope* scope) {
    TRY_ASSIGN(Value object, Eval(*e.children[0], scope));
    if (object.is_undefined()) return Undefined(object);
    int64_t bound[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int k = 0; k < 3; ++k) {
      if (e.children[k + 1] == nullptr) continue;
      TRY_ASSIGN(Value v, Eval(*e.children[k + 1], scope));
      if (v.is_none()) continue;
      if (v.kind() != Value::Kind::kInt) return TypeError(e.line, "slice indices must be integers");
      bound[k] = v.AsInt();
      given[k] = true;
    }
    const int64_t step = bound[2];
    if (step == 0) return TypeError(e.line, "slice step cannot be zero");
    TRY_ASSIGN(ValueList items, object.Items());
    const auto n = static_cast<int64_t>(items.size());
    auto clamp = [&](int64_t v, bool is_given, int64_t fallback) {
      if (!is_given) return fallback;
      if (v < 0) v += n;
      return step > 0 ? std::clamp<int64_t>(v, 0, n) : std::clamp<int64_t>(v, -1, n - 1);
    };
    const int64_t start = clamp(bound[0], given[0], step > 0 ? 0 : n - 1);
    const int64_t stop = clamp(bound[1], given[1], step > 0 ? n : -1);
    ValueList out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(items[i]);
    if (object.is_string()) {
      std::string s;
      for (const Value& c : out) s += c.AsString();
      return Value(s);
    }
    return Value(std::move(out));
  }

  Result<bool> Contains(const Value& container, const Value& item, int line) {
    if (container.is_undefined()) return false;  // Jinja2's Undefined iterates as empty
    if (container.is_string()) {
      if (!item.is_string()) return TypeError(line, "'in <string>' requires a string, found " + item.TypeName());
      return container.AsString().find(item.AsString()) != std::string::npos;
    }
    if (container.is_mapping()) return item.is_string() && container.AsDict().Find(item.AsString()) != nullptr;
    if (container.is_list()) {
      for (const Value& v : container.AsList()) {
        if (v.Equals(item)) return true;
      }
      return false;
    }
    return TypeError(line, "argument of type " + container.TypeName() + " is not iterable");
  }

  Result<Value> Eval(const Expr& e, Scope* scope) {
    TRY(Enter());
    Result<Value> v = EvalNode(e, scope);
    --nesting_;
    return v;
  }

  Result<Value> EvalNode(const Expr& e, Scope* scope) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.literal;
      case ExprKind::kName:
        return Lookup(e.name, scope);
      case ExprKind::kList: {
        ValueList items;
        for (const ExprPtr& child : e.children) {
          TRY_ASSIGN(Value v, Eval(*child, scope));
          items.push_back(std::move(v));
        }
        return Value(std::move(items));
      }
      case ExprKind::kDict: {
        ValueDict dict;
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          TRY_ASSIGN(Value key, Eval(*e.children[i], scope));
          TRY_ASSIGN(Value value, Eval(*e.children[i + 1], scope));
          if (!key.is_string()) return TypeError(e.line, "dict keys must be strings");
          dict.Set(key.AsString(), std::move(value));
        }
        return Value(std::move(dict));
      }
      case ExprKind::kGetAttr: {
        TRY_ASSIGN(Value object, Eval(*e.children[0], scope));
        if (object.is_undefined()) return Undefined(object);
        return object.GetAttr(e.name);
      }
      case ExprKind::kGetItem: {
        TRY_ASSIGN(Value object, Eval(*e.children[0], scope));
        TRY_ASSIGN(Value key, Eval(*e.children[1], scope));
        if (object.is_undefined()) return Undefined(object);
        return object.GetItem(key);
      }
      case ExprKind::kSlice:
        return Slice(e, scope);
      case ExprKind::kCall: {
        const Expr& callee = *e.children[0];
        TRY_ASSIGN(CallArgs args, EvalArgs(e, scope, 1));
        if (callee.kind == ExprKind::kGetAttr) {
          TRY_ASSIGN(Value object, Eval(*callee.children[0], scope));
          if (object.is_undefined()) return Undefined(object);
          bool found = false;
          TRY(Step());
          TRY_ASSIGN(Value result, CallMethod(object, callee.name, args, &found));
          if (found) return result;
          Value attribute = object.GetAttr(callee.name);
          if (attribute.is_undefined()) {
            return TypeError(e.line, object.TypeName() + " has no method '" + callee.name + "'");
          }
          return CallValue(attribute, args, e.line);
        }
        TRY_ASSIGN(Value function, Eval(callee, scope));
        return CallValue(function, args, e.line);
      }
      case ExprKind::kFilter: {
        TRY_ASSIGN(Value input, Eval(*e.children[0], scope));
        TRY_ASSIGN(CallArgs args, EvalArgs(e, scope, 1));
        TRY(Step());
        return ApplyFilter(e.name, input, args);
      }
      case ExprKind::kTest: {
        TRY_ASSIGN(Value input, Eval(*e.children[0], scope));
        TRY_ASSIGN(CallArgs args, EvalArgs(e, scope, 1));
        TRY_ASSIGN(bool result, ApplyTest(e.name, input, args));
        return Value(result != e.negated);
      }
      case ExprKind::kNot: {
        TRY_ASSIGN(Value v, Eval(*e.children[0], scope));
        return Value(!v.Truthy());
      }
      case ExprKind::kNegate: {
        TRY_ASSIGN(Value v, Eval(*e.children[0], scope));
        if (v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool) return Value(-v.AsInt());
        if (v.kind() == Value::Kind::kFloat) return Value(-v.AsFloat());
        if (v.is_undefined()) return Undefined(v);
        return TypeError(e.line, "bad operand type for unary -: " + v.TypeName());
      }
      case ExprKind::kAnd:
      case ExprKind::kOr: {
        TRY_ASSIGN(Value left, Eval(*e.children[0], scope));
        if (left.Truthy() == (e.kind == ExprKind::kOr)) return left;
        return Eval(*e.children[1], scope);
      }
      case ExprKind::kCondition: {
        TRY_ASSIGN(Value condition, Eval(*e.children[1], scope));
        if (condition.Truthy()) return Eval(*e.children[0], scope);
        if (e.children[2] == nullptr) return Value::Undefined("conditional");
        return Eval(*e.children[2], scope);
      }
      case ExprKind::kBinary: {
        TRY_ASSIGN(Value left, Eval(*e.children[0], scope));
        TRY_ASSIGN(Value right, Eval(*e.children[1], scope));
        const std::string& op = e.name;
        if (op == "==") return Value(left.Equals(right));
        if (op == "!=") return Value(!left.Equals(right));
        if (op == "in" || op == "not in") {
          TRY_ASSIGN(bool contained, Contains(right, left, e.line));
          return Value(contained == (op == "in"));
        }
        if (op == "<" || op == ">" || op == "<=" || op == ">=") {
          if (left.is_undefined()) return Undefined(left);
          if (right.is_undefined()) return Undefined(right);
          TRY_ASSIGN(bool less, op == "<" || op == ">=" ? left.Less(right) : right.Less(left));
          return Value(op == "<" || op == ">" ? less : !less);
        }
        Result<Value> value = BinaryOperation(op, left, right, options_.limits);
        if (!value.has_value()) return value.error().WithContext("chat template line " + std::to_string(e.line));
        return value;
      }
    }
    return TypeError(e.line, "unknown expression");
  }

  std::shared_ptr<const Program> program_;
  RenderOptions options_;
  Scope builtins_;
  const Scope* globals_ = nullptr;
  int64_t steps_ = 0;
  int depth_ = 0;
  int nesting_ = 0;
};

}  // namespace

Result<std::string> RenderTemplate(const std::shared_ptr<const Program>& program, const ValueDict& context,
                                   const RenderOptions& options) {
  return Interpreter(program, options).Run(context);
}

}  // namespace kiln::tokenizer::jinja
