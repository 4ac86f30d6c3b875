#include "store/redis_clients.h"

#include <fmt/format.h>

namespace ganglion::store {

RedisClient& RedisClients::get(const RedisEndpoint& endpoint) {
  // The password is part of the identity (two configs may use two users of one server); it
  // stays in memory only.
  std::string key =
      fmt::format("{}\n{}\n{}\n{}", endpoint.host, endpoint.port, endpoint.db, endpoint.password);
  auto& slot = clients_[key];
  if (!slot) slot = std::make_unique<RedisClient>(io_, endpoint);
  return *slot;
}

}  // namespace ganglion::store
