// A durable sink queue alone (issue 11's goal: >= 100,000 readings/s to disk with batched
// fsync; one million queued readings drain in order). Three phases on a fresh directory:
//
//   fill:  pushes --readings reading records (JSON as the HTTP sink sends them) in pushes of
//          --batch, each push followed by a group-commit sync request (one fsync in flight at
//          a time, as a sink does); ends when the last push is on disk.
//   open:  closes and reopens the queue (what a restart does: scans every segment).
//   drain: takes batches of --take records and marks them delivered, checking that every
//          record comes once and in order.
//
// Prints readings/s (wall) and process CPU nanoseconds per reading (this thread and the
// syncer's) for each phase, and the fsyncs made.
//
//   ganglion_queue_bench [--readings N] [--batch N] [--take N] [--max-bytes N] [--dir PATH]
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "edge/queue/log_syncer.h"
#include "edge/queue/record_queue.h"

using namespace ganglion::edge;
namespace fs = std::filesystem;

namespace {

double processCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double wallSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/// The sink's group commit, as edge_runtime does it: at most one sync in flight; a push
/// made meanwhile is covered by the next.
class Syncs {
 public:
  explicit Syncs(DurableQueue& queue) : queue_(queue) {}

  void pushed() {
    std::unique_lock lock(mutex_);
    ++appended_;
    startLocked(lock);
  }

  /// Waits until every push so far is synced; false when an fsync failed.
  bool waitAll() {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] {
      if (synced_ < appended_ && !in_flight_) startLocked(lock);
      return synced_ >= appended_;
    });
    return ok_;
  }

 private:
  void startLocked(std::unique_lock<std::mutex>&) {
    if (in_flight_) return;
    std::vector<int> fds = queue_.log().unsyncedFds();
    if (fds.empty()) {
      synced_ = appended_;
      done_.notify_all();
      return;
    }
    in_flight_ = true;
    const uint64_t target = appended_;
    LogSyncer::shared().sync(std::move(fds), [this, target](bool ok) {
      std::lock_guard lock(mutex_);
      in_flight_ = false;
      synced_ = target;
      ok_ = ok_ && ok;
      done_.notify_all();
    });
  }

  DurableQueue& queue_;
  std::mutex mutex_;
  std::condition_variable done_;
  uint64_t appended_ = 0, synced_ = 0;
  bool in_flight_ = false, ok_ = true;
};

void report(const char* phase, uint64_t n, double wall, double cpu, const std::string& extra) {
  std::printf("%s: %.0f readings/s (wall), %.0f ns CPU per reading%s\n", phase, static_cast<double>(n) / wall,
              cpu * 1e9 / static_cast<double>(n), extra.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t readings = 1'000'000, max_bytes = 1ull << 30;
  uint32_t batch = 500, take = 500;
  std::string dir =
      (fs::temp_directory_path() / ("ganglion-queue-bench-" + std::to_string(::getpid()))).string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--readings"))
      readings = v;
    else if (!std::strcmp(argv[i], "--batch"))
      batch = static_cast<uint32_t>(v);
    else if (!std::strcmp(argv[i], "--take"))
      take = static_cast<uint32_t>(v);
    else if (!std::strcmp(argv[i], "--max-bytes"))
      max_bytes = v;
    else if (!std::strcmp(argv[i], "--dir"))
      dir = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!readings || !batch || !take) return 2;
  fs::remove_all(dir);

  const uint64_t fsyncs0 = LogSyncer::shared().fsyncs();
  {
    auto opened = DurableQueue::open(dir, max_bytes);
    if (!opened.ok()) {
      std::fprintf(stderr, "%s\n", opened.error().message.c_str());
      return 1;
    }
    DurableQueue& queue = **opened;
    Syncs syncs(queue);
    std::vector<QueuedRecord> records;
    const int64_t t0 = 1'764'460'800'000;
    uint64_t dropped = 0;
    const double cpu0 = processCpuSeconds(), wall0 = wallSeconds();
    for (uint64_t seq = 0; seq < readings;) {
      records.clear();
      for (uint32_t i = 0; i < batch && seq < readings; ++i, ++seq) {
        QueuedRecord& r = records.emplace_back();
        char json[256];
        const int len = std::snprintf(
            json, sizeof json,
            "{\"id\":\"r-%llu\",\"source\":\"plant\",\"device\":\"pump-%llu\","
            "\"metric\":\"vibration\",\"ts\":%lld,\"value\":%.4f,\"quality\":\"good\"}",
            static_cast<unsigned long long>(seq), static_cast<unsigned long long>(seq % 1000),
            static_cast<long long>(t0 + static_cast<int64_t>(seq)), static_cast<double>(seq % 997) / 1000.0);
        r.json.assign(json, static_cast<size_t>(len));
        r.enqueued_ms = t0;
      }
      dropped += queue.push(records);
      syncs.pushed();
    }
    const bool synced = syncs.waitAll();
    const double wall = wallSeconds() - wall0, cpu = processCpuSeconds() - cpu0;
    char extra[256];
    std::snprintf(extra, sizeof extra, ", %llu fsyncs, %.0f MB on disk, %llu dropped%s",
                  static_cast<unsigned long long>(LogSyncer::shared().fsyncs() - fsyncs0),
                  static_cast<double>(queue.bytes()) / 1e6, static_cast<unsigned long long>(dropped),
                  synced ? "" : ", AN FSYNC FAILED");
    report("fill", readings, wall, cpu, extra);
    if (dropped || !synced) return 1;
  }

  double wall0 = wallSeconds(), cpu0 = processCpuSeconds();
  auto reopened = DurableQueue::open(dir, max_bytes);
  if (!reopened.ok()) {
    std::fprintf(stderr, "%s\n", reopened.error().message.c_str());
    return 1;
  }
  DurableQueue& queue = **reopened;
  std::printf("open: %.3f s wall for %llu queued records\n", wallSeconds() - wall0,
              static_cast<unsigned long long>(queue.records()));
  if (queue.records() != readings) {
    std::fprintf(stderr, "reopened with %llu records, not %llu\n",
                 static_cast<unsigned long long>(queue.records()), static_cast<unsigned long long>(readings));
    return 1;
  }

  wall0 = wallSeconds();
  cpu0 = processCpuSeconds();
  uint64_t next = 0;
  std::string body;
  while (true) {
    body.clear();
    const uint32_t n = queue.take(take, body);
    if (!n) break;
    // Every record in order: the ids in the body must be next, next+1, ...
    for (size_t at = body.find("\"id\":\"r-"); at != std::string::npos;
         at = body.find("\"id\":\"r-", at + 1)) {
      const uint64_t id = std::strtoull(body.c_str() + at + 8, nullptr, 10);
      if (id != next) {
        std::fprintf(stderr, "out of order: record %llu where %llu was due\n",
                     static_cast<unsigned long long>(id), static_cast<unsigned long long>(next));
        return 1;
      }
      ++next;
    }
    queue.finish(true);
  }
  const double wall = wallSeconds() - wall0, cpu = processCpuSeconds() - cpu0;
  if (next != readings) {
    std::fprintf(stderr, "drained %llu of %llu\n", static_cast<unsigned long long>(next),
                 static_cast<unsigned long long>(readings));
    return 1;
  }
  report("drain", readings, wall, cpu, ", every record once and in order");
  fs::remove_all(dir);
  return 0;
}
