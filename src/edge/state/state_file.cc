#include "edge/state/state_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "base/file_io.h"
#include "base/log.h"
#include "edge/queue/durable_log.h"
#include "edge/state/state_codec.h"

namespace ganglion::edge {
namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'G', 'N', 'G', 'L', 'S', 'T', 'A', '1'};
constexpr size_t kHead = 8 + 4 + 8;
/// A state file larger than this is refused unread (no state the edge writes comes near it).
constexpr uint64_t kMaxStateFile = 1ull << 30;

}  // namespace

Result<void> writeStateFile(const fs::path& path, std::string_view body) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) return Error(fmt::format("cannot create {}: {}", path.parent_path().string(), ec.message()));
  std::string head;
  head.append(kMagic, 8);
  StateEncoder e(head);
  e.u32(crc32c(0, body));
  e.u64(body.size());
  const fs::path tmp = path.string() + ".tmp";
  // A fresh file, never one planted there (a link would make the write land elsewhere).
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Error(errnoText("cannot create", tmp));
  const bool written =
      writeAll(fd, head.data(), head.size()) && writeAll(fd, body.data(), body.size()) && ::fsync(fd) == 0;
  const std::string why = written ? std::string() : errnoText("cannot write", tmp);
  ::close(fd);
  if (!written) {
    ::unlink(tmp.c_str());
    return Error(why);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string failed = errnoText("cannot rename into", path);
    ::unlink(tmp.c_str());
    return Error(failed);
  }
  // The new name must survive a power cut too.
  if (const int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    (void)::fsync(dir);
    ::close(dir);
  }
  return {};
}

Result<std::string> readStateFile(const fs::path& path) {
  // Non-blocking: a FIFO planted there must not hold the start (it is refused below).
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::string();
    return Error(errnoText("cannot open", path));
  }
  struct stat st {};
  std::string data;
  bool read_ok =
      ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) <= kMaxStateFile;
  if (read_ok) {
    data.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < data.size()) {
      const ssize_t r = ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    data.resize(got);
  }
  ::close(fd);
  if (!read_ok) return Error(fmt::format("{} is not a regular file of at most 1 GiB", path.string()));
  if (data.size() < kHead || std::memcmp(data.data(), kMagic, 8) != 0)
    return Error(fmt::format("{} is not a state file (no header)", path.string()));
  StateDecoder d(std::string_view(data).substr(8, 12));
  const uint32_t crc = d.u32();
  const uint64_t length = d.u64();
  if (length != data.size() - kHead)
    return Error(fmt::format("{} is cut short or too long: {} bytes of state where {} were written",
                             path.string(), data.size() - kHead, length));
  std::string body = data.substr(kHead);
  if (crc32c(0, body) != crc)
    return Error(fmt::format("{} is damaged (its checksum does not match)", path.string()));
  return body;
}

std::string encodePipelineState(const SavedPipelineState& state) {
  std::string out;
  StateEncoder e(out);
  e.u8(1);
  e.str(state.pipeline);
  e.str(state.stages);
  e.u32(static_cast<uint32_t>(state.rules.size()));
  for (const auto& [key, body] : state.rules) {
    e.str(key);
    e.str(body);
  }
  return out;
}

Result<SavedPipelineState> decodePipelineState(std::string_view body) {
  SavedPipelineState state;
  if (body.empty()) return state;
  StateDecoder d(body);
  if (d.u8() != 1) return Error("the state is of an unknown version");
  state.pipeline = d.str();
  state.stages = d.str();
  const uint32_t rules = d.u32();
  for (uint32_t i = 0; i < rules && d.ok(); ++i) {
    std::string key(d.str());
    std::string rule(d.str());
    state.rules.emplace_back(std::move(key), std::move(rule));
  }
  if (!d.ok() || !d.done()) return Error("the state does not parse");
  return state;
}

StateWriter::StateWriter() : thread_([this] { run(); }) {}

StateWriter::~StateWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

StateWriter& StateWriter::shared() {
  static StateWriter writer;
  return writer;
}

void StateWriter::write(fs::path path, std::string body, std::function<void(bool)> done) {
  {
    std::lock_guard lock(mutex_);
    Pending& p = pending_[std::move(path)];
    p.body = std::move(body);
    if (done) p.done.push_back(std::move(done));
  }
  wake_.notify_one();
}

void StateWriter::flush() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return pending_.empty() && !busy_; });
}

void StateWriter::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping, nothing left
    auto node = pending_.extract(pending_.begin());
    busy_ = true;
    lock.unlock();
    auto written = writeStateFile(node.key(), node.mapped().body);
    for (auto& done : node.mapped().done) done(written.ok());
    lock.lock();
    busy_ = false;
    bool& failing = failing_[node.key()];
    if (!written.ok() && !failing)
      logLine(fmt::format("edge: cannot keep state in {}: {}", node.key().string(), written.error().message));
    failing = !written.ok();
    if (pending_.empty()) idle_.notify_all();
  }
}

}  // namespace ganglion::edge
