// A pipeline's ingest log: readings are appended (one frame per hand-off) before the connector
// acknowledges its sender, and synced to disk in batches; the sender is acknowledged once
// they are on disk. At start the readings still in the log run through the pipeline again,
// so an acknowledged reading survives `kill -9` even while it sits in an open window. The
// pipeline trims the log once the windows that used a frame's readings have closed and their
// records are on disk in its sinks' queues.
//
// Threads: append() from any thread (serialized by its own mutex; the pipeline calls it under
// its inbox lock, so the log's order is the order the pipeline runs); replay() and trim() on
// the pipeline's worker (or the main thread before it runs).
#pragma once

#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "edge/edge_runtime.h"
#include "edge/queue/durable_log.h"
#include "edge/queue/log_syncer.h"

namespace ganglion::edge {

class IngestLog : public std::enable_shared_from_this<IngestLog> {
 public:
  /// `syncer`: who fsyncs its appends (null: LogSyncer::shared(); tests pass a slow one).
  static Result<std::shared_ptr<IngestLog>> open(const std::filesystem::path& dir,
                                                 LogSyncer* syncer = nullptr);

  /// Appends the readings; `ticket` completes once they are on disk (not ok: they could not be
  /// written). Returns where the frame ends (nullopt: not written).
  std::optional<LogPosition> append(const IncomingReadings& readings,
                                    const std::shared_ptr<DeliveryTicket>& ticket);

  /// One frame read back.
  struct Entry {
    std::shared_ptr<IncomingReadings> readings;
    LogPosition end;
  };
  /// Every frame from the cursor on, decoded (damaged or undecodable frames skipped and
  /// counted). `max_seq`: raised to the largest record number seen.
  std::vector<Entry> replay(uint64_t& max_seq);

  /// Frames before `upto` (`frames` of them) are done with; `next_seq` is stored with the
  /// cursor (record numbers continue past it after a restart).
  void trim(LogPosition upto, uint64_t frames, uint64_t next_seq);
  /// The record number stored by the last trim.
  uint64_t storedSeq();
  /// Frames in the log, bytes on disk, damaged bytes skipped and what the last damage was
  /// (GET /edge).
  struct Stats {
    uint64_t frames = 0, bytes = 0, corrupt_bytes = 0;
    std::string corruption;                 ///< the latest damage note
    std::vector<std::string> damage_notes;  ///< every one (DurableLog::damageNotes)
  };
  Stats stats();
  const std::filesystem::path& dir() const { return dir_; }

  /// Milliseconds senders have waited on this log's fsyncs beyond kStallGraceMs each (a slow
  /// disk), so far, the one in progress included. The pipeline's idle clock leaves them out:
  /// a window does not close for want of readings that only wait for our own disk. Any thread.
  int64_t stalledMs();
  static constexpr int64_t kStallGraceMs = 20;

 private:
  explicit IngestLog(std::unique_ptr<DurableLog> log, std::filesystem::path dir, LogSyncer& syncer)
      : log_(std::move(log)), dir_(std::move(dir)), syncer_(syncer) {}
  void requestSync();  // mutex_ held
  void synced(uint64_t target, bool ok);

  std::mutex mutex_;
  std::unique_ptr<DurableLog> log_;
  std::filesystem::path dir_;
  LogSyncer& syncer_;
  GroupCommit<std::shared_ptr<DeliveryTicket>> commit_;
  std::string scratch_;
  uint64_t undecodable_ = 0;
  int64_t sync_started_ms_ = -1;  // steady clock; -1: no sync in flight
  int64_t stalled_ms_ = 0;        // finished syncs' time past the grace
};

}  // namespace ganglion::edge
