// Status and Result<T>: expected failures as values (leveldb/abseil style).
// A Status carries a code and a human-readable message; the api/ module maps
// codes to AWS error types in exactly one place (api/errors.cc).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ty {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad user input (ValidationException)
  kNotFound,            // a named thing does not exist
  kAlreadyExists,       // a unique name is taken (ResourceInUse)
  kFailedPrecondition,  // the thing is in the wrong state for the request
  kResourceExhausted,   // a limit was hit
  kPermissionDenied,    // caller may not do this
  kUnauthenticated,     // caller could not be identified
  kUnavailable,         // transient: try again
  kInternal,            // our own fault
  kIoError,             // the environment failed us (file system, network, child process)
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Returns a copy whose message is "<prefix>: <message>".
  Status WithPrefix(const std::string& prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status Unauthenticated(std::string m) {
  return {StatusCode::kUnauthenticated, std::move(m)};
}
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }

// Translates errno into an IoError naming what was being done.
Status ErrnoStatus(const std::string& what, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ty

#define TY_CONCAT_INNER_(a, b) a##b
#define TY_CONCAT_(a, b) TY_CONCAT_INNER_(a, b)

#define TY_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::ty::Status ty_status_ = (expr);        \
    if (!ty_status_.ok()) return ty_status_; \
  } while (0)

// `tmp` names a variable and `lhs` may be a declaration (`auto x`): neither can be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define TY_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

#define TY_ASSIGN_OR_RETURN(lhs, expr) \
  TY_ASSIGN_OR_RETURN_IMPL_(TY_CONCAT_(ty_result_, __LINE__), lhs, expr)
