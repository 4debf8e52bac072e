// Errors as values: Status and Result<T>.
//
// Library code never throws and never aborts on bad input. A fallible function returns
// Status (no value) or Result<T> (a value or an error). The message says what was expected,
// what was found and, where it helps, what to do about it:
//
//   Result<Config> ParseConfig(const std::string& path) {
//     if (!exists) return Error(ErrorCode::kNotFound, "config.json not found in " + dir);
//     ...
//   }
//   Status Load() {
//     TRY(auto config, ParseConfig(path));   // returns the error to the caller
//     ...
//   }
//
// Result<T> spells its accessors like std::expected (has_value, value, error), so moving to
// C++23 is an alias. The CLI turns an error into a message on stderr and a non-zero exit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kiln {

// Grouped by who is at fault: the caller's input, the model/program, the machine, a bug.
enum class ErrorCode : int {
  kOk = 0,
  // Argument: the caller passed something invalid.
  kInvalidArgument = 1,
  kOutOfRange = 2,
  // Input files: missing, malformed or unsupported models and artifacts.
  kNotFound = 10,
  kMalformed = 11,
  kUnsupported = 12,
  kVersionMismatch = 13,
  // Program: a plan that does not verify or does not fit.
  kPlanInvalid = 20,
  // Resource: memory, files, devices.
  kIo = 30,
  kOutOfMemory = 31,
  kDeviceUnavailable = 32,
  // Internal: a kiln bug (a broken invariant), reported instead of crashing.
  kInternal = 40,
};

const char* ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "malformed: <message>"
  std::string ToString() const;
  // Adds context in front of the message ("model.safetensors: " + message).
  Error WithContext(const std::string& context) const {
    return Error(code_, context + ": " + message_);
  }

 private:
  ErrorCode code_;
  std::string message_;
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design
  static Status Ok() { return Status(); }
  bool ok() const { return !error_.has_value(); }
  const Error& error() const { return *error_; }
  ErrorCode code() const { return ok() ? ErrorCode::kOk : error_->code(); }
  std::string ToString() const { return ok() ? "ok" : error_->ToString(); }

 private:
  std::optional<Error> error_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Error error) : data_(std::move(error)) {}     // NOLINT
  Result(Status status) : data_(status.error()) {}     // NOLINT: only from a failed Status
  bool has_value() const { return data_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }
  const Error& error() const { return std::get<1>(data_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  Status status() const { return has_value() ? Status() : Status(error()); }

 private:
  std::variant<T, Error> data_;
};

namespace internal {
inline Status AsStatus(const Status& s) { return s; }
template <typename T>
Status AsStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

}  // namespace kiln

// TRY(expr) propagates a failed Status or Result; TRY_ASSIGN(decl, expr) also binds the value
// of a Result (it expands to several statements: inside an `if`, use braces). The only
// propagation macros in the code base; no argument counting, so `expr`
// may contain commas.
#define KILN_CONCAT_INNER(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_INNER(a, b)
#define TRY(...)                                                          \
  do {                                                                    \
    ::kiln::Status kiln_try_status_ = ::kiln::internal::AsStatus(__VA_ARGS__); \
    if (!kiln_try_status_.ok()) return kiln_try_status_.error();          \
  } while (0)
#define KILN_TRY_ASSIGN_IMPL(tmp, decl, ...) \
  auto tmp = (__VA_ARGS__);                  \
  if (!tmp.has_value()) return tmp.error();  \
  decl = std::move(tmp).value()
#define TRY_ASSIGN(decl, ...) \
  KILN_TRY_ASSIGN_IMPL(KILN_CONCAT(kiln_try_result_, __LINE__), decl, __VA_ARGS__)
