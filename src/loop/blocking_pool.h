// A few threads for work that must not hold up a worker's event loop: CPU-heavy steps of one
// request (counting the tokens of a large prompt) today; file, DNS and store calls next.
// Process-wide, started at first use, shared by every worker.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <type_traits>
#include <utility>

namespace ganglion::loop {

/// The pool (two threads). Any thread.
boost::asio::thread_pool& blockingPool();

/// Runs `fn` on the blocking pool and resumes the calling coroutine on its own executor with
/// the result (or the exception `fn` threw). `fn` must own or outlive what it reads: the caller
/// stays suspended until it returns, even when the caller's operation is cancelled.
template <class Fn>
boost::asio::awaitable<std::invoke_result_t<Fn&>> runBlocking(Fn fn) {
  using R = std::invoke_result_t<Fn&>;
  co_return co_await boost::asio::co_spawn(
      blockingPool().get_executor(),
      [fn = std::move(fn)]() mutable -> boost::asio::awaitable<R> { co_return fn(); },
      boost::asio::use_awaitable);
}

}  // namespace ganglion::loop
