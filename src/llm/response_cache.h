// Exact-match cache of LLM answers, shared by the workers. An entry is keyed on the gateway
// key, the endpoint and the client's request in normal form (object keys sorted, so field
// order does not matter); it holds the exact bytes the client was sent, a whole JSON answer
// or a whole event stream, and is replayed as such. Bounded in bytes (least recently used
// go first) and by TTL.
#pragma once

#include <boost/json/fwd.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/hash.h"

namespace ganglion::llm {

class ResponseCache {
 public:
  struct Entry {
    std::string payload;  ///< the answer's body as sent (JSON, or SSE events)
    bool stream = false;
    std::string provider, model;  ///< who answered, for the answer headers
  };

  /// The entry for `key`, if present and fresh. Any worker thread.
  std::optional<Entry> get(const Sha256& key);
  /// Stores an answer; entries past `max_bytes` are evicted, oldest use first. Any thread.
  void put(const Sha256& key, Entry entry, std::chrono::milliseconds ttl, uint64_t max_bytes);

  uint64_t bytes() const;
  size_t size() const;

  using Clock = std::chrono::steady_clock;
  void setClockForTesting(std::function<Clock::time_point()> now) { now_ = std::move(now); }

 private:
  struct Slot {
    Entry entry;
    Clock::time_point expires;
    std::list<Sha256>::iterator lru;
    uint64_t cost() const { return entry.payload.size() + entry.provider.size() + entry.model.size() + 128; }
  };
  void evict(std::unordered_map<Sha256, Slot, DigestHash>::iterator it);

  mutable std::mutex mutex_;
  std::unordered_map<Sha256, Slot, DigestHash> slots_;
  std::list<Sha256> lru_;  ///< most recently used first
  uint64_t bytes_ = 0;
  std::function<Clock::time_point()> now_ = [] { return Clock::now(); };
};

/// The cache key of a request: who asks, where, and the body in normal form.
Sha256 cacheKey(std::string_view key_name, std::string_view endpoint, const boost::json::object& body);

/// `body` serialised with every object's keys sorted (the normal form). Exposed for tests.
std::string normalJson(const boost::json::value& body);

}  // namespace ganglion::llm
