// Global functions and binary operators of the chat-template interpreter (jinja_builtins.h).
#include <cmath>
#include <ctime>

#include "tokenizer/jinja_builtins.h"

namespace kiln::tokenizer::jinja {
namespace {

Status CheckSize(const RenderLimits& limits, size_t bytes) {
  if (bytes > limits.max_output_bytes) {
    return Error(ErrorCode::kOutOfRange, "chat template output exceeds " + std::to_string(limits.max_output_bytes) + " bytes");
  }
  return Status::Ok();
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

std::vector<std::pair<std::string, Value>> GlobalFunctions(int64_t max_range_length, std::optional<std::time_t> now) {
  std::vector<std::pair<std::string, Value>> globals;
  globals.emplace_back("range", Value::Function("range", [max_range_length](const CallArgs& args) -> Result<Value> {
    int64_t start = 0, stop = 0, step = 1;
    const auto& p = args.positional;
    for (const Value& v : p) {
      if (v.kind() != Value::Kind::kInt) return Error(ErrorCode::kInvalidArgument, "range() takes integers");
    }
    if (p.size() == 1) {
      stop = p[0].AsInt();
    } else if (p.size() >= 2) {
      start = p[0].AsInt();
      stop = p[1].AsInt();
      if (p.size() >= 3) step = p[2].AsInt();
    } else {
      return Error(ErrorCode::kInvalidArgument, "range() takes 1 to 3 arguments");
    }
    if (step == 0) return Error(ErrorCode::kInvalidArgument, "range() step must not be zero");
    const double count = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
    if (count > static_cast<double>(max_range_length)) {
      return Error(ErrorCode::kOutOfRange, "range() longer than " + std::to_string(max_range_length));
    }
    ValueList out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.emplace_back(i);
    return Value(std::move(out));
  }));
  globals.emplace_back("namespace", Value::Function("namespace", [](const CallArgs& args) -> Result<Value> {
    ValueDict attributes;
    for (const Value& v : args.positional) {
      if (!v.is_mapping()) return Error(ErrorCode::kInvalidArgument, "namespace() takes a mapping or keywords");
      for (const auto& [k, x] : v.AsDict().items) attributes.Set(k, x);
    }
    for (const auto& [k, v] : args.keyword) attributes.Set(k, v);
    return Value::Namespace(std::move(attributes));
  }));
  globals.emplace_back("dict", Value::Function("dict", [](const CallArgs& args) -> Result<Value> {
    ValueDict d;
    for (const Value& v : args.positional) {
      if (v.is_mapping()) {
        for (const auto& [k, x] : v.AsDict().items) d.Set(k, x);
      }
    }
    for (const auto& [k, v] : args.keyword) d.Set(k, v);
    return Value(std::move(d));
  }));
  globals.emplace_back("raise_exception", Value::Function("raise_exception", [](const CallArgs& args) -> Result<Value> {
    return Error(ErrorCode::kInvalidArgument,
                 "chat template raised an error: " + (args.positional.empty() ? std::string() : args.positional[0].Str()));
  }));
  globals.emplace_back("strftime_now", Value::Function("strftime_now", [now](const CallArgs& args) -> Result<Value> {
    if (args.positional.empty() || !args.positional[0].is_string()) {
      return Error(ErrorCode::kInvalidArgument, "strftime_now() takes a format string");
    }
    const std::time_t t = now.value_or(std::time(nullptr));
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), args.positional[0].AsString().c_str(), &tm);
    return Value(std::string(buf, n));
  }));
  return globals;
}

Result<Value> BinaryOperation(const std::string& op, const Value& a, const Value& b, const RenderLimits& limits) {
  if (op == "~") {
    std::string s = a.Str() + b.Str();
    TRY(CheckSize(limits, s.size()));
    return Value(std::move(s));
  }
  if (a.is_undefined()) return Error(ErrorCode::kInvalidArgument, "'" + a.AsString() + "' is undefined");
  if (b.is_undefined()) return Error(ErrorCode::kInvalidArgument, "'" + b.AsString() + "' is undefined");
  const bool numbers = (a.is_number() || a.kind() == Value::Kind::kBool) && (b.is_number() || b.kind() == Value::Kind::kBool);
  const bool floats = numbers && (a.kind() == Value::Kind::kFloat || b.kind() == Value::Kind::kFloat);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      TRY(CheckSize(limits, a.AsString().size() + b.AsString().size()));
      return Value(a.AsString() + b.AsString());
    }
    if (a.is_list() && b.is_list()) {
      if (a.AsList().size() + b.AsList().size() > static_cast<size_t>(limits.max_range_length)) {
        return Error(ErrorCode::kOutOfRange, "chat template list too long");
      }
      ValueList out = a.AsList();
      out.insert(out.end(), b.AsList().begin(), b.AsList().end());
      return Value(std::move(out));
    }
    if (numbers) return floats ? Value(a.AsFloat() + b.AsFloat()) : Value(a.AsInt() + b.AsInt());
  } else if (op == "-" && numbers) {
    return floats ? Value(a.AsFloat() - b.AsFloat()) : Value(a.AsInt() - b.AsInt());
  } else if (op == "*") {
    if (numbers) return floats ? Value(a.AsFloat() * b.AsFloat()) : Value(a.AsInt() * b.AsInt());
    if (a.is_string() && b.kind() == Value::Kind::kInt) {
      const int64_t count = std::max<int64_t>(0, b.AsInt());
      TRY(CheckSize(limits, a.AsString().size() * static_cast<size_t>(count)));
      std::string s;
      for (int64_t i = 0; i < count; ++i) s += a.AsString();
      return Value(std::move(s));
    }
  } else if (op == "/" && numbers) {
    if (b.AsFloat() == 0) return Error(ErrorCode::kInvalidArgument, "division by zero");
    return Value(a.AsFloat() / b.AsFloat());
  } else if ((op == "//" || op == "%") && numbers) {
    if (b.AsFloat() == 0) return Error(ErrorCode::kInvalidArgument, "division by zero");
    if (floats) {
      const double q = std::floor(a.AsFloat() / b.AsFloat());
      return op == "//" ? Value(q) : Value(a.AsFloat() - q * b.AsFloat());
    }
    const int64_t q = FloorDiv(a.AsInt(), b.AsInt());
    return op == "//" ? Value(q) : Value(a.AsInt() - q * b.AsInt());
  } else if (op == "**" && numbers) {
    if (!floats && b.AsInt() >= 0) return Value(static_cast<int64_t>(std::pow(a.AsFloat(), b.AsFloat())));
    return Value(std::pow(a.AsFloat(), b.AsFloat()));
  }
  return Error(ErrorCode::kInvalidArgument, "unsupported operand types for " + op + ": " + a.TypeName() + " and " + b.TypeName());
}

}  // namespace kiln::tokenizer::jinja
