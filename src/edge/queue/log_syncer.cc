#include "edge/queue/log_syncer.h"

#include <unistd.h>

namespace ganglion::edge {

LogSyncer::LogSyncer(std::chrono::microseconds gather) : gather_(gather), thread_([this] { run(); }) {}

LogSyncer::~LogSyncer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

LogSyncer& LogSyncer::shared() {
  static LogSyncer syncer;
  return syncer;
}

void LogSyncer::sync(std::vector<int> fds, std::function<void(bool)> done) {
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(Request{std::move(fds), std::move(done)});
  }
  wake_.notify_one();
}

uint64_t LogSyncer::fsyncs() const {
  std::lock_guard lock(mutex_);
  return fsyncs_;
}

uint64_t LogSyncer::batches() const {
  std::lock_guard lock(mutex_);
  return batches_;
}

void LogSyncer::run() {
  std::vector<Request> batch;
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (pending_.empty() && stopping_) return;
    if (!stopping_) {  // gather: appends arriving meanwhile share this fsync
      lock.unlock();
      std::this_thread::sleep_for(gather_);
      lock.lock();
    }
    batch.swap(pending_);
    lock.unlock();
    uint64_t calls = 0;
    std::vector<char> ok(batch.size(), 1);
    for (size_t i = 0; i < batch.size(); ++i) {
      for (int fd : batch[i].fds) {
        if (::fdatasync(fd) != 0) ok[i] = 0;
        ++calls;
        ::close(fd);
      }
    }
    // Counted before the callbacks: a caller woken by one reads counters that include it.
    lock.lock();
    fsyncs_ += calls;
    ++batches_;
    lock.unlock();
    for (size_t i = 0; i < batch.size(); ++i)
      if (batch[i].done) batch[i].done(ok[i] != 0);
    batch.clear();
    lock.lock();
  }
}

}  // namespace ganglion::edge
