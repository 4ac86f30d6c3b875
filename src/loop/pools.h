// Threads for work that must not hold up an event loop, in two pools so that one kind cannot
// starve the other (DESIGN.md: "blocking work on a blocking pool; model inference on a
// compute pool"):
// - the blocking pool, for calls that wait on something outside the process: SQLite, reading
//   files, DNS (reload), blocking client libraries;
// - the compute pool, for CPU-heavy steps of a request: counting a large prompt's tokens
//   today, model inference at the edge next.
// Process-wide, started at first use, shared by every worker and the main thread. Results come
// back to the caller's own executor.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <type_traits>
#include <utility>

namespace ganglion::loop {

/// The blocking pool (two threads: the calls mostly wait). Any thread.
boost::asio::thread_pool& blockingPool();
/// The compute pool (one thread per CPU the process may run on, at least one). Any thread.
boost::asio::thread_pool& computePool();

/// Runs `fn` on `pool` and resumes the calling coroutine on its own executor with the result
/// (or the exception `fn` threw). `fn` may read what the caller's frame holds: the caller
/// stays suspended until it returns, even when the caller's operation is cancelled (the
/// client left). The cancellation is not passed on: `fn` cannot be interrupted, and Asio 1.81
/// throws a cancellation that reaches a finished co_spawn on the pool's thread, where nothing
/// catches it (std::terminate). When the call sits inside a co_await expression, give it a
/// lambda whose captures are trivially destructible (pointers, references, numbers): g++ 12
/// destroys the temporaries of a co_await expression twice, so a captured shared_ptr or
/// string is released twice (a use after free that ASan shows; the admin API's key listing
/// and the reload hit it).
/// A result type without a default constructor (Result<T>) travels in a std::optional:
/// co_spawn's completion needs a default value to start from.
template <class Fn>
boost::asio::awaitable<std::invoke_result_t<Fn&>> runOn(boost::asio::thread_pool& pool, Fn fn) {
  using R = std::invoke_result_t<Fn&>;
  if constexpr (std::is_void_v<R> || std::is_default_constructible_v<R>) {
    co_return co_await boost::asio::co_spawn(
        pool.get_executor(), [fn = std::move(fn)]() mutable -> boost::asio::awaitable<R> { co_return fn(); },
        boost::asio::bind_cancellation_slot(boost::asio::cancellation_slot(), boost::asio::use_awaitable));
  } else {
    std::optional<R> result = co_await boost::asio::co_spawn(
        pool.get_executor(),
        [fn = std::move(fn)]() mutable -> boost::asio::awaitable<std::optional<R>> { co_return fn(); },
        boost::asio::bind_cancellation_slot(boost::asio::cancellation_slot(), boost::asio::use_awaitable));
    co_return std::move(*result);
  }
}

/// runOn(blockingPool(), fn): for work that waits (files, SQLite, DNS).
template <class Fn>
boost::asio::awaitable<std::invoke_result_t<Fn&>> runBlocking(Fn fn) {
  return runOn(blockingPool(), std::move(fn));
}

/// runOn(computePool(), fn): for work that computes (token counts, inference).
template <class Fn>
boost::asio::awaitable<std::invoke_result_t<Fn&>> runCompute(Fn fn) {
  return runOn(computePool(), std::move(fn));
}

}  // namespace ganglion::loop
