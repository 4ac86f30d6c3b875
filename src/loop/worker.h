// A worker: one thread, one event loop, and everything that loop owns (connections, timers,
// buffers). Nothing a worker owns is touched by another thread except through post().
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <thread>

#include "base/buffer.h"
#include "loop/deadline.h"

namespace ganglion::loop {

class Worker {
 public:
  explicit Worker(unsigned index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Starts the thread. Main thread.
  void start();
  /// Runs the loop on the calling thread instead, until stop(): the main thread's loop (admin
  /// API, reloads, health checks), so that it serves HTTP with the same code as the workers.
  void runHere();
  /// Stops a loop run by runHere(). Its own thread.
  void stop();
  /// After runHere() returned: runs the loop again while `pending()` holds, at most `limit`,
  /// so that work told to end (connections closed) can unwind before its owners go.
  void finish(const std::function<bool()>& pending, std::chrono::milliseconds limit);
  /// Stops the loop and joins the thread. Main thread.
  void stopAndJoin();
  /// Runs `fn` on this worker's thread. Any thread.
  template <typename Fn>
  void post(Fn&& fn) {
    boost::asio::post(io_, std::forward<Fn>(fn));
  }
  /// Adds a function called on every sweep tick (about every 100 ms). Worker thread.
  void onTick(std::function<void()> fn) { tick_hooks_.push_back(std::move(fn)); }

  unsigned index() const { return index_; }
  boost::asio::io_context& io() { return io_; }
  BufferPool& buffers() { return buffers_; }
  DeadlineList& deadlines() { return deadlines_; }

 private:
  void scheduleSweep();

  unsigned index_;
  // Declared before the loop so that they outlive it: connections its destructor drops
  // return their buffers and unlink their deadlines.
  BufferPool buffers_;
  DeadlineList deadlines_;
  std::vector<std::function<void()>> tick_hooks_;
  // Only this worker's thread touches its sockets and timers, so the reactor's per-socket
  // locks are switched off; post() from other threads stays safe.
  boost::asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  boost::asio::steady_timer sweep_timer_;
  std::thread thread_;
};

}  // namespace ganglion::loop
