// Racing work against the client's hang-up: the one cancel point of a request's async work.
#pragma once

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <optional>
#include <utility>

#include "http/server_connection.h"

namespace ganglion::http {

/// Runs `work` unless the client hangs up first; then `work` is cancelled (what it holds is
/// released, a provider or Redis call in it abandoned) and the result is nullopt. Worker thread.
template <typename T>
Task<std::optional<T>> unlessClientLeaves(ServerConnection& conn, Task<T> work) {
  using namespace boost::asio::experimental::awaitable_operators;
  auto raced = co_await (std::move(work) || conn.closedByClient());
  if (raced.index() == 0) co_return std::optional<T>(std::move(std::get<0>(raced)));
  co_return std::nullopt;
}

}  // namespace ganglion::http
