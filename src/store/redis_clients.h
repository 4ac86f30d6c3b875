// One worker's Redis connections, by endpoint, for the filters that keep their state in Redis
// (a rate limit shared by several gateways). Made at first use on the worker's loop and kept
// as long as the worker, across config versions.
#pragma once

#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "store/redis_client.h"

namespace ganglion::store {

class RedisClients {
 public:
  explicit RedisClients(boost::asio::io_context& io) : io_(io) {}
  /// The worker's connection to `endpoint` (one per host, port, database and password),
  /// created on first use. Its users run scripts with EVALSHA and fall back to EVAL, so a
  /// connection needs no set-up of its own. Worker thread.
  RedisClient& get(const RedisEndpoint& endpoint);

 private:
  boost::asio::io_context& io_;
  std::map<std::string, std::unique_ptr<RedisClient>> clients_;
};

}  // namespace ganglion::store
