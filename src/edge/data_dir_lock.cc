#include "edge/data_dir_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "base/file_io.h"

namespace ganglion::edge {

namespace {

/// The pid the holder wrote into the lock file ("" when it cannot be read).
std::string holderOf(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string pid(buf, static_cast<size_t>(n));
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  for (char c : pid)
    if (c < '0' || c > '9') return "";
  return pid;
}

}  // namespace

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    dir_ = std::move(other.dir_);
  }
  return *this;
}

void DataDirLock::release() {
  if (fd_ >= 0) ::close(fd_);  // closing the file lets go of the flock
  fd_ = -1;
}

Result<DataDirLock> DataDirLock::take(const std::filesystem::path& dir, std::chrono::milliseconds wait,
                                      const std::function<void(std::string_view)>& log) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  const std::filesystem::path path = dir / "gateway.lock";
  DataDirLock lock;
  lock.dir_ = dir;
  lock.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock.fd_ < 0) return Error(errnoText("cannot open", path));
  const auto until = std::chrono::steady_clock::now() + wait;
  bool told = false;
  while (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return Error(errnoText("cannot lock", path));
    const std::string holder = holderOf(lock.fd_);
    const std::string who = holder.empty() ? "another process" : "process " + holder;
    if (std::chrono::steady_clock::now() >= until)
      return Error(fmt::format("{} is in use by {} (its {} is locked): two gateways cannot share one "
                               "edge.data_dir; stop the other, or give each its own",
                               dir.string(), who, path.filename().string()),
                   std::string(kInUse));
    if (!told) {
      told = true;
      log(fmt::format("edge: {} is held by {}; waiting up to {} ms for it to let go", dir.string(), who,
                      wait.count()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock.fd_, 0) == 0) {
    const ssize_t ignored = ::pwrite(lock.fd_, pid.data(), pid.size(), 0);
    (void)ignored;  // the pid only makes the message of a second gateway clearer
  }
  return lock;
}

}  // namespace ganglion::edge
