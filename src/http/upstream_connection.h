// HTTP/1.1 connections to upstream targets (a stream, its read buffer and response parser),
// and the per-worker pools of idle keep-alive ones. A pool belongs to one worker and is keyed
// by the target's "host:port", so it survives config reloads that keep the target.
#pragma once

#include <poll.h>

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "base/buffer.h"
#include "http/http1_parser.h"
#include "loop/deadline.h"
#include "net/stream.h"

namespace ganglion::http {

/// One connection to an upstream target with its read buffer and response parser.
/// Owned by a request while in use and by its pool while idle; worker thread only.
class UpstreamConnection {
 public:
  UpstreamConnection(boost::asio::io_context& io, BufferPool& buffers, loop::DeadlineList& deadlines)
      : stream(io),
        in(buffers),
        parser(Http1Parser::Kind::kResponse, {64 * 1024, 8 * 1024, 200}),
        deadline([this] {
          timed_out = true;
          boost::system::error_code ec;
          stream.socket().cancel(ec);
        }) {
    deadlines.push_back(deadline);
  }
  net::Stream stream;
  Buffer in;
  Http1Parser parser;
  loop::Deadline deadline;
  bool timed_out = false;
  bool reused = false;  ///< came from the pool: may have been closed by the peer meanwhile
  std::chrono::steady_clock::time_point idle_since;
};

class ConnectionPool {
 public:
  static constexpr std::chrono::milliseconds kRecentlyUsed{200};
  explicit ConnectionPool(size_t max_idle) : max_idle_(max_idle) {}
  /// Takes the most recently used idle connection that still looks usable, or nullptr.
  /// Connections the peer has closed (or that have unexpected bytes waiting) are dropped on
  /// the way and counted in `discarded`.
  std::unique_ptr<UpstreamConnection> take(uint64_t* discarded = nullptr) {
    while (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      if (!looksAlive(*conn)) {
        if (discarded) ++*discarded;
        continue;
      }
      conn->reused = true;
      return conn;
    }
    return nullptr;
  }
  /// An idle HTTP/1.1 connection has nothing to read: readable means the peer closed it (FIN
  /// or RST) or sent bytes no request asked for (a TLS close_notify, garbage). Either way it
  /// cannot carry a request. One poll() with no wait, skipped for a connection idle less than
  /// kRecentlyUsed: under load connections are reused within microseconds, and no server's
  /// keep-alive timeout is that short, so the hot path makes no extra system call.
  static bool looksAlive(UpstreamConnection& conn) {
    if (!conn.stream.socket().is_open() || !conn.in.empty()) return false;
    if (std::chrono::steady_clock::now() - conn.idle_since < kRecentlyUsed) return true;
    pollfd p{conn.stream.socket().native_handle(), POLLIN | POLLRDHUP, 0};
    int n = ::poll(&p, 1, 0);
    return n == 0;
  }
  /// Returns a connection after a complete exchange; closes it if the pool is full.
  void give(std::unique_ptr<UpstreamConnection> conn) {
    if (idle_.size() >= max_idle_ || !conn->stream.socket().is_open()) return;
    conn->in.releaseIfEmpty();
    conn->idle_since = std::chrono::steady_clock::now();
    idle_.push_back(std::move(conn));
  }
  /// Closes connections idle longer than `max_idle_time`. Worker tick.
  void expire(std::chrono::milliseconds max_idle_time) {
    auto cutoff = std::chrono::steady_clock::now() - max_idle_time;
    size_t keep = 0;
    // idle_ is ordered oldest first, so the expired ones form a prefix.
    while (keep < idle_.size() && idle_[keep]->idle_since < cutoff) ++keep;
    idle_.erase(idle_.begin(), idle_.begin() + static_cast<long>(keep));
  }
  void setMaxIdle(size_t n) { max_idle_ = n; }
  size_t idleCount() const { return idle_.size(); }

 private:
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;
  size_t max_idle_;
};

}  // namespace ganglion::http
