// Makes durable logs' writes reach the disk in batches, on a thread of its own: fsync takes
// milliseconds and must not stall a worker's event loop. Requests that arrive while one batch
// is being synced wait for the next, so a busy log pays one fsync per batch, not per append
// (group commit).
//
// Threads: sync() from any thread; `done` runs on the syncer's thread (post from there to the
// thread that owns what it touches).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
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

}  // namespace ganglion::edge
