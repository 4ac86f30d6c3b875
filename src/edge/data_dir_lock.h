// One gateway per `edge.data_dir`: the process holds `<data_dir>/gateway.lock` (flock, its pid
// written in) for as long as it runs. A gateway started while another still holds it (one
// shutting down, a supervisor's restart that came early) waits for it to let go, and refuses
// to start if it does not: running on, each queue and ingest log would find its own lock held
// and keep readings only in memory, answering 202 and PUBACK for what a crash would lose.
//
// Threads: the main thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string_view>
#include <utility>

#include "base/result.h"

namespace ganglion::edge {

class DataDirLock {
 public:
  DataDirLock() = default;
  DataDirLock(DataDirLock&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), dir_(std::move(other.dir_)) {}
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock() { release(); }

  /// The code of take()'s error when another process holds the lock (any other error: the
  /// directory is unusable, and its queues will say so themselves).
  static constexpr std::string_view kInUse = "data_dir_in_use";

  /// Takes `dir`'s lock (making `dir` if need be), waiting up to `wait` for the process that
  /// holds it to let go; `log` hears once that it waits. An error names the holder's pid.
  static Result<DataDirLock> take(const std::filesystem::path& dir, std::chrono::milliseconds wait,
                                  const std::function<void(std::string_view)>& log);

  bool held() const { return fd_ >= 0; }
  const std::filesystem::path& dir() const { return dir_; }
  void release();

 private:
  int fd_ = -1;
  std::filesystem::path dir_;
};

}  // namespace ganglion::edge
