// Result<T>: a value or an Error, the return type of every fallible call in worker code.
// Result<void>: success or an Error (never Result<bool> for "it worked").
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ganglion {

/// A failure: a human-readable reason, and where it has them a stable machine-readable code
/// ("budget_exceeded", "upstream_timeout"), the HTTP status a client would get, and whether
/// trying again may succeed. Cheap to move; never thrown.
struct Error {
  Error() = default;
  explicit Error(std::string message, std::string code = {}, int status = 0, bool retryable = false)
      : message(std::move(message)), code(std::move(code)), status(status), retryable(retryable) {}

  std::string message;
  std::string code;        ///< empty: none
  int status = 0;          ///< HTTP status; 0: none
  bool retryable = false;  ///< the same call may succeed later (a timeout, a lock, 429/503)
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

/// Success, or an Error. `return {};` succeeds.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT: implicit by design
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

}  // namespace ganglion
