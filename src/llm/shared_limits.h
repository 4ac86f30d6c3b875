// Per-key rpm, tpm and budget kept in Redis (`state.redis`), so every gateway on the same
// Redis enforces one limit per key instead of one per instance. Reserve and settle are Lua
// scripts: the check and the increment are one atomic step across instances, timed by the
// Redis server's clock. Reservations of calls whose gateway died expire on their own.
// One per worker (its own pipelined connection); the admin API reads totals synchronously.
#pragma once

#include <boost/asio/io_context.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "http/server_connection.h"
#include "llm/ledger.h"
#include "store/redis_client.h"

namespace ganglion::llm {

class SharedLimits {
 public:
  /// Worker thread; connects on first use.
  SharedLimits(boost::asio::io_context& io, const config::StateConfig& state, unsigned worker_index);

  struct Verdict {
    std::optional<Refusal> refusal;  ///< set: refused (429)
    std::string unavailable;         ///< set: Redis could not answer; nothing was reserved
  };
  /// Like KeyLedger::admit, against the shared counters. Worker thread.
  http::Task<Verdict> admit(const std::string& key, const KeyLimits& limits, uint64_t tokens,
                            Picodollars cost, KeyLedger::Reservation& out);
  /// Like KeyLedger::settle; sent without waiting (a lost settle leaves the reservation to
  /// expire). Worker thread.
  void settle(KeyLedger::Reservation& r, uint64_t tokens, Picodollars cost);

  /// Spend and reservations now of each of `keys` (name, budget period), in order, or why
  /// that key could not be read, for GET /llm/keys: one blocking connection, every read
  /// pipelined, each step bounded by the timeout. Main thread, admin requests only.
  static std::vector<Result<KeyLedger::Totals>> readTotals(
      const config::StateConfig& state, const std::vector<std::pair<std::string, KeyLimits::Period>>& keys);

  /// Redis key names for a gateway key (one hash slot in a cluster).
  static std::string hashKey(const std::string& key);
  static std::string inflightKey(const std::string& key);

 private:
  http::Task<Result<store::RedisReply>> runScript(const std::string& sha, const std::string& body,
                                                  std::vector<std::string> args);

  store::RedisClient client_;
  std::string instance_;  ///< names this process's reservations
  uint64_t next_reservation_ = 0;
  std::string admit_sha_, settle_sha_;
};

}  // namespace ganglion::llm
