// Makes durable logs' writes reach the disk in batches, on a thread of its own: fsync takes
// milliseconds and must not stall a worker's event loop. Requests that arrive while one batch
// is being synced wait for the next, so a busy log pays one fsync per batch, not per append
// (group commit).
//
// Threads: sync() from any thread; `done` runs on the syncer's thread (post from there to the
// thread that owns what it touches).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace ganglion::edge {

class LogSyncer {
 public:
  /// `gather`: how long a batch waits for more requests before it is synced.
  explicit LogSyncer(std::chrono::microseconds gather = std::chrono::microseconds(500));
  /// Syncs what is pending, then ends the thread.
  ~LogSyncer();
  LogSyncer(const LogSyncer&) = delete;
  LogSyncer& operator=(const LogSyncer&) = delete;

  /// The process's syncer (started on first use, ended at exit). Any thread.
  static LogSyncer& shared();

  /// Syncs `fds` (the syncer closes them) and then calls `done(ok)`: ok is false when an
  /// fsync failed (the writes may not be on disk). Any thread.
  void sync(std::vector<int> fds, std::function<void(bool)> done);

  /// fsync calls made and batches run (metrics). Any thread.
  uint64_t fsyncs() const;
  uint64_t batches() const;

 private:
  struct Request {
    std::vector<int> fds;
    std::function<void(bool)> done;
  };
  void run();

  std::chrono::microseconds gather_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Request> pending_;
  bool stopping_ = false;
  uint64_t fsyncs_ = 0, batches_ = 0;
  std::thread thread_;
};

/// The group-commit bookkeeping of one log, shared by its owners (a durable sink queue, an
/// ingest log): appends are counted, one sync is in flight at a time, and a waiter is released
/// once everything appended before it is synced. Not thread-safe: its owner serializes calls.
template <typename Waiter>
class GroupCommit {
 public:
  void appended(uint64_t n = 1) { appended_ += n; }
  /// `waiter` is released once what was appended so far is synced.
  void wait(Waiter waiter) { waiters_.emplace_back(appended_, std::move(waiter)); }
  /// Starts a sync unless one is in flight: returns what it covers (nullopt: one is in flight,
  /// and what was appended since waits for the next).
  std::optional<uint64_t> start() {
    if (in_flight_) return std::nullopt;
    in_flight_ = true;
    return appended_;
  }
  /// The sync started for `target` ended: the waiters it releases, oldest first.
  std::vector<Waiter> finish(uint64_t target) {
    in_flight_ = false;
    synced_ = std::max(synced_, target);
    std::vector<Waiter> released;
    while (!waiters_.empty() && waiters_.front().first <= synced_) {
      released.push_back(std::move(waiters_.front().second));
      waiters_.pop_front();
    }
    return released;
  }
  /// Appends made since the last sync started.
  bool behind() const { return appended_ > synced_; }

 private:
  uint64_t appended_ = 0, synced_ = 0;
  bool in_flight_ = false;
  std::deque<std::pair<uint64_t, Waiter>> waiters_;
};

}  // namespace ganglion::edge
