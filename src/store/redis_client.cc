#include "store/redis_client.h"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>

#include "base/log.h"

namespace ganglion::store {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr auto kRetryEvery = std::chrono::seconds(1);
constexpr size_t kMaxPending = 100'000;  ///< beyond this, Redis is too slow: commands fail at once

namespace {

RedisReply copyReply(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(copyReply(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

}  // namespace

Result<std::vector<RedisReply>> redisBlocking(const RedisEndpoint& endpoint,
                                              const std::vector<std::vector<std::string>>& commands) {
  const auto ms = endpoint.timeout.count();
  const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  redisContext* c = redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, tv);
  if (!c || c->err) {
    std::string why = c ? c->errstr : "out of memory";
    if (c) redisFree(c);
    return Error{fmt::format("cannot connect to Redis at {}:{}: {}", endpoint.host, endpoint.port, why)};
  }
  redisSetTimeout(c, tv);
  std::vector<std::vector<std::string>> all;
  if (!endpoint.password.empty()) all.push_back({"AUTH", endpoint.password});
  if (endpoint.db != 0) all.push_back({"SELECT", std::to_string(endpoint.db)});
  const size_t set_up = all.size();
  all.insert(all.end(), commands.begin(), commands.end());
  for (const auto& cmd : all) {  // pipelined: every command goes out before the first reply is read
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(c, static_cast<int>(cmd.size()), argv.data(), lens.data());
  }
  std::vector<RedisReply> replies;
  for (size_t i = 0; i < all.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || !raw) {
      std::string why = c->errstr;
      redisFree(c);
      return Error{fmt::format("Redis at {}:{}: {}", endpoint.host, endpoint.port, why)};
    }
    RedisReply reply = copyReply(static_cast<redisReply*>(raw));
    freeReplyObject(raw);
    if (i < set_up && reply.isError()) {
      redisFree(c);
      return Error{"Redis refused AUTH or SELECT: " + reply.str};
    }
    if (i >= set_up) replies.push_back(std::move(reply));
  }
  redisFree(c);
  return replies;
}

std::string formatRedisCommand(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  int n = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), lens.data());
  if (n < 0) return {};
  std::string out(cmd, static_cast<size_t>(n));
  redisFreeCommand(cmd);
  return out;
}

RedisClient::RedisClient(asio::io_context& io, RedisEndpoint endpoint,
                         std::vector<std::vector<std::string>> on_connect)
    : io_(io),
      endpoint_(std::move(endpoint)),
      on_connect_(std::move(on_connect)),
      socket_(io),
      reader_(redisReaderCreate()) {}

RedisClient::~RedisClient() {
  ++generation_;
  boost::system::error_code ec;
  socket_.close(ec);
  redisReaderFree(reader_);
}

void RedisClient::enqueue(const std::vector<std::string>& args, std::shared_ptr<Waiter> waiter) {
  out_ += formatRedisCommand(args);
  pending_.push_back(Pending{std::move(waiter), false});
  if (state_ == State::kIdle) {
    state_ = State::kConnecting;
    asio::co_spawn(io_, connect(++generation_), asio::detached);
  } else {
    flush();
  }
}

asio::awaitable<Result<RedisReply>> RedisClient::command(std::vector<std::string> args) {
  if (state_ == State::kIdle && std::chrono::steady_clock::now() < retry_at_) {
    const Error down{last_error_};
    co_return down;
  }
  if (pending_.size() >= kMaxPending) {
    const Error busy{"Redis is not keeping up (too many commands waiting)"};
    co_return busy;
  }
  auto waiter = std::make_shared<Waiter>(io_);
  enqueue(args, waiter);
  waiter->timer.expires_after(endpoint_.timeout);
  co_await waiter->timer.async_wait(kNoThrow);
  if (!waiter->result) {
    // Cancelled by the caller (its client left): the reply still comes and is dropped; the
    // connection stays, since the other commands on it are fine.
    if (std::chrono::steady_clock::now() < waiter->timer.expiry()) {
      const Error cancelled{"cancelled"};
      co_return cancelled;
    }
    fail(fmt::format("no reply from Redis within {} ms", endpoint_.timeout.count()));
  }
  co_return std::move(*waiter->result);
}

void RedisClient::send(const std::vector<std::string>& args) {
  if (state_ == State::kIdle && std::chrono::steady_clock::now() < retry_at_) return;
  if (pending_.size() >= kMaxPending) return;
  enqueue(args, nullptr);
}

asio::awaitable<void> RedisClient::connect(uint64_t generation) {
  tcp::resolver resolver(io_);
  auto [rec, endpoints] =
      co_await resolver.async_resolve(endpoint_.host, std::to_string(endpoint_.port), kNoThrow);
  if (generation != generation_) co_return;
  if (rec) {
    fail(fmt::format("cannot resolve Redis host '{}': {}", endpoint_.host, rec.message()));
    co_return;
  }
  auto [cec, peer] = co_await asio::async_connect(socket_, endpoints, kNoThrow);
  if (generation != generation_) co_return;
  if (cec) {
    fail(fmt::format("cannot connect to Redis at {}:{}: {}", endpoint_.host, endpoint_.port, cec.message()));
    co_return;
  }
  boost::system::error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  // AUTH, SELECT and the on-connect commands go first, ahead of those queued meanwhile.
  std::vector<std::vector<std::string>> hello;
  if (!endpoint_.password.empty()) hello.push_back({"AUTH", endpoint_.password});
  if (endpoint_.db != 0) hello.push_back({"SELECT", std::to_string(endpoint_.db)});
  hello.insert(hello.end(), on_connect_.begin(), on_connect_.end());
  std::string first;
  for (const auto& cmd : hello) {
    first += formatRedisCommand(cmd);
    pending_.push_front(Pending{nullptr, true});  // all alike: their order does not matter
  }
  out_ = first + out_;
  state_ = State::kReady;
  // Still unavailable until a reply comes: a server that accepts connections and never
  // answers would otherwise be "reachable again" every second.
  flush();
  asio::co_spawn(io_, readLoop(generation), asio::detached);
}

void RedisClient::flush() {
  if (state_ != State::kReady || writing_ || out_.empty()) return;
  writing_ = true;
  asio::co_spawn(io_, writeLoop(generation_), asio::detached);
}

asio::awaitable<void> RedisClient::writeLoop(uint64_t generation) {
  std::string chunk;
  while (generation == generation_ && !out_.empty()) {
    chunk.clear();
    chunk.swap(out_);
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(chunk), kNoThrow);
    if (generation != generation_) co_return;  // fail() already reset writing_
    if (ec) {
      fail("writing to Redis: " + ec.message());
      co_return;
    }
  }
  if (generation == generation_) writing_ = false;
}

asio::awaitable<void> RedisClient::readLoop(uint64_t generation) {
  std::vector<char> buf(16 * 1024);
  for (;;) {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf), kNoThrow);
    if (generation != generation_) co_return;
    if (ec) {
      fail(ec == asio::error::eof ? "Redis closed the connection" : "reading from Redis: " + ec.message());
      co_return;
    }
    if (redisReaderFeed(reader_, buf.data(), n) != REDIS_OK) {
      fail("Redis sent something that is not RESP");
      co_return;
    }
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
        fail(fmt::format("Redis sent something that is not RESP: {}", reader_->errstr));
        co_return;
      }
      if (!raw) break;
      RedisReply reply = copyReply(static_cast<redisReply*>(raw));
      freeReplyObject(raw);
      if (pending_.empty()) {
        fail("Redis sent a reply nobody asked for");
        co_return;
      }
      Pending p = std::move(pending_.front());
      pending_.pop_front();
      deliver(p, std::move(reply));
      if (generation != generation_) co_return;  // a handshake error dropped the connection
    }
  }
}

void RedisClient::deliver(Pending& p, RedisReply reply) {
  if (p.handshake && reply.isError()) {
    fail("Redis refused the connection's set-up (AUTH, SELECT or SCRIPT LOAD): " + reply.str);
    return;
  }
  if (!last_error_.empty()) {
    logLine(fmt::format("Redis at {}:{} reachable again", endpoint_.host, endpoint_.port));
    last_error_.clear();
  }
  if (p.handshake) return;
  if (!p.waiter) {
    if (reply.isError()) logLine("Redis: " + reply.str);
    return;
  }
  p.waiter->result.emplace(std::move(reply));
  p.waiter->timer.cancel();
}

void RedisClient::fail(const std::string& reason) {
  ++generation_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  redisReaderFree(reader_);
  reader_ = redisReaderCreate();
  const bool was_up = last_error_.empty();
  if (was_up) logLine(fmt::format("Redis at {}:{} unavailable: {}", endpoint_.host, endpoint_.port, reason));
  last_error_ = reason;
  state_ = State::kIdle;
  writing_ = false;
  out_.clear();
  retry_at_ = std::chrono::steady_clock::now() + kRetryEvery;
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& p : pending) {
    if (!p.waiter || p.waiter->result) continue;
    p.waiter->result.emplace(Error{reason});
    p.waiter->timer.cancel();
  }
}

}  // namespace ganglion::store
