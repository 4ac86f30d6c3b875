// Result<T>: a value or an Error, the return type of every fallible call in worker code.
// Result<void>: success or an Error (never Result<bool> for "it worked").
// Result<T, E>: the same with an Error that carries more (E derives from Error; the LLM API's
// ApiError adds the wire fields of its error bodies).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
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

template <typename T, typename E = Error>
class [[nodiscard]] Result {
  static_assert(std::is_base_of_v<Error, E>, "a Result's error is an Error");

 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const E& error() const { return std::get<1>(v_); }
  E& error() { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

/// Success, or an Error. `return {};` succeeds.
template <typename E>
class [[nodiscard]] Result<void, E> {
  static_assert(std::is_base_of_v<Error, E>, "a Result's error is an Error");

 public:
  Result() = default;
  Result(E error) : error_(std::move(error)) {}  // NOLINT: implicit by design
  bool ok() const { return !error_.has_value(); }
  /// Plain Result<void> only: a richer E (ApiError) replaced optional<E>, whose truth meant
  /// the opposite, so ok() is spelled out there.
  explicit operator bool() const requires std::is_same_v<E, Error> { return ok(); }
  const E& error() const { return *error_; }
  E& error() { return *error_; }

 private:
  std::optional<E> error_;
};

}  // namespace ganglion
