#include "telemetry/access_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

#include "base/strings.h"

namespace ganglion::telemetry {

AccessLog::AccessLog(std::string path, unsigned workers) {
  if (path == "stdout") {
    fd_ = STDOUT_FILENO;
  } else if (path == "stderr") {
    fd_ = STDERR_FILENO;
  } else {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    owns_fd_ = fd_ >= 0;
    if (fd_ < 0) fd_ = STDERR_FILENO;
  }
  for (unsigned i = 0; i < std::max(1u, workers); ++i) shards_.push_back(std::make_unique<Shard>());
  thread_ = std::thread([this] { run(); });
}

AccessLog::~AccessLog() {
  stop();
  if (owns_fd_) ::close(fd_);
}

void AccessLog::write(const AccessRecord& rec) {
  Shard& shard = *shards_[rec.worker % shards_.size()];
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::lock_guard lock(shard.mutex);
  if (shard.pending.size() > kMaxPending) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  int64_t second = ms / 1000;
  if (second != shard.cached_second) {
    std::time_t t = static_cast<std::time_t>(second);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(shard.cached_time, sizeof shard.cached_time, "%Y-%m-%dT%H:%M:%S", &tm);
    shard.cached_second = second;
  }
  std::string& out = shard.pending;
  out +=
      fmt::format(R"({{"time":"{}.{:03}Z","worker":{},"client":")", shard.cached_time, ms % 1000, rec.worker);
  appendJsonEscaped(out, rec.client_ip);
  out += R"(","method":")";
  appendJsonEscaped(out, rec.method);
  out += R"(","target":")";
  appendJsonEscaped(out, rec.target);
  out += R"(","host":")";
  appendJsonEscaped(out, rec.host);
  out += fmt::format(R"(","status":{},"bytes":{},"duration_us":{},"route":")", rec.status, rec.bytes_sent,
                     rec.duration_us);
  appendJsonEscaped(out, rec.route);
  out += R"(","upstream":")";
  appendJsonEscaped(out, rec.upstream);
  out += R"(","upstream_addr":")";
  appendJsonEscaped(out, rec.upstream_addr);
  out += fmt::format(R"(","upstream_status":{},"attempts":{})", rec.upstream_status, rec.attempts);
  if (!rec.principal.empty()) {
    out += R"(,"key":")";
    appendJsonEscaped(out, rec.principal);
    out += '"';
  }
  for (const auto& a : rec.attributes) {
    out += ",\"";
    appendJsonEscaped(out, a.name);
    out += "\":";
    switch (a.kind) {
      case AccessAttribute::Kind::kText:
        out += '"';
        appendJsonEscaped(out, a.text);
        out += '"';
        break;
      case AccessAttribute::Kind::kInteger:
        fmt::format_to(std::back_inserter(out), "{}", a.integer);
        break;
      case AccessAttribute::Kind::kBool:
        out += a.integer ? "true" : "false";
        break;
    }
  }
  if (!rec.error.empty()) {
    out += R"(,"error":")";
    appendJsonEscaped(out, rec.error);
    out += '"';
  }
  out += "}\n";
}

void AccessLog::run() {
  std::string batch;
  for (;;) {
    bool stopping;
    {
      std::unique_lock lock(stop_mutex_);
      stop_cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stopping_; });
      stopping = stopping_;
    }
    for (auto& shard : shards_) {
      {
        std::lock_guard lock(shard->mutex);
        batch.swap(shard->pending);
      }
      size_t off = 0;
      while (off < batch.size()) {
        ssize_t n = ::write(fd_, batch.data() + off, batch.size() - off);
        if (n <= 0) break;  // a broken log sink must not take the gateway down
        off += static_cast<size_t>(n);
      }
      batch.clear();
    }
    if (stopping) return;
  }
}

void AccessLog::stop() {
  {
    std::lock_guard lock(stop_mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AccessLog::render(std::string& out) const {
  appendFamilyHead(out, "ganglion_access_log_dropped_total", "counter",
                   "Access records dropped because the writer fell behind.");
  out += "ganglion_access_log_dropped_total ";
  out += std::to_string(dropped());
  out += '\n';
}

}  // namespace ganglion::telemetry
