// An asynchronous, pipelined Redis connection for one worker: Asio owns the socket and the
// event loop, hiredis encodes commands and decodes replies (RESP). One per worker thread,
// so nothing is shared and no lock is taken; commands from many calls share the one
// connection, their replies matched in order.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

struct redisReader;

namespace ganglion::store {

struct RedisEndpoint {
  std::string host;
  uint16_t port = 6379;
  std::string password;  ///< secret: never logged
  unsigned db = 0;
  std::chrono::milliseconds timeout{500};  ///< a reply later than this breaks the connection
};

/// A reply, copied out of hiredis's reply tree.
struct RedisReply {
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError };
  Type type = Type::kNil;
  std::string str;  ///< string, status and error text
  int64_t integer = 0;
  std::vector<RedisReply> elements;
  bool isError() const { return type == Type::kError; }
};

/// Formats one command in RESP (binary-safe arguments).
std::string formatRedisCommand(const std::vector<std::string>& args);

/// Runs `commands` pipelined on a new blocking connection (AUTH and SELECT first, as the
/// endpoint asks) and returns their replies in order (an error reply is a reply). An Error
/// when Redis cannot be reached, refuses AUTH or SELECT, or takes longer than the endpoint's
/// timeout to connect or to reply. Blocks the calling thread: for the main thread's occasional reads (the
/// admin API), never on a worker.
Result<std::vector<RedisReply>> redisBlocking(const RedisEndpoint& endpoint,
                                              const std::vector<std::vector<std::string>>& commands);

class RedisClient {
 public:
  /// Connects lazily, on the first command. Worker thread (the one running `io`).
  /// `on_connect`: commands sent first on every new connection (after AUTH and SELECT), such
  /// as SCRIPT LOAD; an error reply to any of them drops the connection.
  RedisClient(boost::asio::io_context& io, RedisEndpoint endpoint,
              std::vector<std::vector<std::string>> on_connect = {});
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  /// Sends one command behind those in flight and waits for its reply. An Error when Redis
  /// cannot be reached, the connection breaks, or no reply comes within the timeout (the
  /// connection is then dropped and the next command reconnects, at most once a second).
  /// A Redis error reply is a reply (type kError), not an Error. Worker thread.
  boost::asio::awaitable<Result<RedisReply>> command(std::vector<std::string> args);
  /// Sends one command without waiting for its reply (an error reply is logged). Worker thread.
  void send(const std::vector<std::string>& args);
  /// The reason Redis is not usable now, or empty. Worker thread.
  const std::string& unavailable() const { return last_error_; }

 private:
  struct Waiter {
    explicit Waiter(boost::asio::io_context& io) : timer(io) {}
    boost::asio::steady_timer timer;
    std::optional<Result<RedisReply>> result;
  };
  struct Pending {
    std::shared_ptr<Waiter> waiter;  ///< null: fire and forget
    bool handshake = false;          ///< AUTH, SELECT, on_connect: an error reply breaks the connection
  };
  enum class State { kIdle, kConnecting, kReady };

  void enqueue(const std::vector<std::string>& args, std::shared_ptr<Waiter> waiter);
  boost::asio::awaitable<void> connect(uint64_t generation);
  boost::asio::awaitable<void> readLoop(uint64_t generation);
  boost::asio::awaitable<void> writeLoop(uint64_t generation);
  void flush();
  void deliver(Pending& p, RedisReply reply);
  /// Drops the connection and fails every command in flight with `reason`.
  void fail(const std::string& reason);

  boost::asio::io_context& io_;
  RedisEndpoint endpoint_;
  std::vector<std::vector<std::string>> on_connect_;
  boost::asio::ip::tcp::socket socket_;
  redisReader* reader_ = nullptr;
  State state_ = State::kIdle;
  uint64_t generation_ = 0;  ///< bumped by every connect and failure; stale coroutines stop
  bool writing_ = false;
  std::string out_;              ///< commands not yet written
  std::deque<Pending> pending_;  ///< written or queued, awaiting replies in order
  std::chrono::steady_clock::time_point retry_at_{};
  std::string last_error_;
};

}  // namespace ganglion::store
