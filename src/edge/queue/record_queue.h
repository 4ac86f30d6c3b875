// A sink's queue of records waiting for delivery: in memory, or on disk in `edge.data_dir`
// (a DurableLog). Both keep records in order, hand them out in batches, and when full drop by
// class: raw readings first, then windows, events and summaries last.
//
// Threads: the sink's worker only.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "edge/queue/durable_log.h"

namespace ganglion::edge {

/// One record waiting for delivery: its JSON and what a full queue drops first.
struct QueuedRecord {
  /// What a record costs in memory beside its JSON text (the deque slot, the string's own
  /// fields), counted against queue.max_bytes so that small records cannot exceed it by half.
  static constexpr uint64_t kOverhead = 64;
  std::string json;
  uint8_t drop_class = 0;  ///< 0 reading, 1 window, 2 event or summary
  bool dropped = false;
  int64_t enqueued_ms = 0;  ///< wall clock (epoch ms)
};

/// Which records a full queue gives up first: 0 for raw readings, 1 for windows, 2 for events
/// and summaries (alarms are what the uplink most needs).
constexpr uint8_t kDropClasses = 3;

class RecordQueue {
 public:
  virtual ~RecordQueue() = default;
  /// Appends records in order (their enqueued_ms set), then keeps under the cap by dropping
  /// the oldest records of the lowest class (never the batch in flight). Returns how many
  /// were dropped, the new ones included.
  virtual uint64_t push(std::vector<QueuedRecord>& records) = 0;
  /// The next batch, at most `max_records`: their JSON texts comma-separated appended to
  /// `body`. Returns how many (0: none waits). They are in flight until finish().
  virtual uint32_t take(uint32_t max_records, std::string& body) = 0;
  /// While a batch is in flight: the records queued after it join it, at most `max_records`
  /// of them holding at most `max_bytes` of JSON, comma-separated into `body` (which holds
  /// only them). Returns how many (0: none waits, or none fits). finish() then ends the whole
  /// batch, and a take() after a failed one hands all of it again. (An MQTT outbox publishes
  /// alarms that come while its batch waits for the broker's acknowledgements.)
  virtual uint32_t extend(uint32_t max_records, uint64_t max_bytes, std::string& body) = 0;
  /// The batch in flight was delivered (it goes) or not (the next take() hands it again).
  virtual void finish(bool delivered) = 0;
  /// Records waiting (in flight included), the bytes they hold (memory, or the log's files),
  /// and when the oldest was queued (0: none).
  virtual uint64_t records() const = 0;
  virtual uint64_t bytes() const = 0;
  virtual int64_t oldestMs() const = 0;
  /// Moves every waiting record out, in order (a sink's queue changing between memory and
  /// disk at a reload).
  virtual void takeAll(std::vector<QueuedRecord>& out) = 0;
  /// A replaced sink's queue moves to its successor with the successor's cap.
  virtual void setMaxBytes(uint64_t max_bytes) = 0;
};

/// Records in a deque; max_bytes counts their JSON plus QueuedRecord::kOverhead each.
class MemoryQueue final : public RecordQueue {
 public:
  explicit MemoryQueue(uint64_t max_bytes) : max_bytes_(max_bytes) {}
  uint64_t push(std::vector<QueuedRecord>& records) override;
  uint32_t take(uint32_t max_records, std::string& body) override;
  uint32_t extend(uint32_t max_records, uint64_t max_bytes, std::string& body) override;
  void finish(bool delivered) override;
  uint64_t records() const override { return live_[0] + live_[1] + live_[2]; }
  uint64_t bytes() const override { return bytes_; }
  int64_t oldestMs() const override;
  void takeAll(std::vector<QueuedRecord>& out) override;
  void setMaxBytes(uint64_t max_bytes) override { max_bytes_ = max_bytes; }
  /// The oldest record waiting (nullptr: none).
  const QueuedRecord* front() const;

 private:
  bool dropOne();
  void popDroppedFront();

  uint64_t max_bytes_;
  std::deque<QueuedRecord> queue_;
  uint64_t base_ = 0;          // absolute index of queue_.front()
  uint64_t inflight_end_ = 0;  // absolute end of the batch in flight (0: none)
  uint64_t cursor_[kDropClasses] = {0, 0, 0};
  uint64_t live_[kDropClasses] = {0, 0, 0};
  uint64_t bytes_ = 0;
};

/// Records in a DurableLog (tag: the drop class; payload: enqueued_ms, then the JSON).
/// max_bytes caps the log's files; a segment is 1/32 of it (16 KiB to 64 MiB), and the cap
/// may be passed by the segment being written and the one being delivered.
///
/// Records the disk refuses (full, an I/O error) wait in memory, after every record on disk
/// and in order, up to kMaxHeldBytes (then dropped by class like a memory queue's). Each push
/// tries the disk again with them first (unless some are in flight); once they are delivered,
/// or written, records go to disk again.
class DurableQueue final : public RecordQueue {
 public:
  static Result<std::unique_ptr<DurableQueue>> open(const std::string& dir, uint64_t max_bytes);
  uint64_t push(std::vector<QueuedRecord>& records) override;
  uint32_t take(uint32_t max_records, std::string& body) override;
  uint32_t extend(uint32_t max_records, uint64_t max_bytes, std::string& body) override;
  void finish(bool delivered) override;
  uint64_t records() const override { return log_->frames() + held_.records(); }
  uint64_t bytes() const override { return log_->diskBytes() + held_.bytes(); }
  int64_t oldestMs() const override { return log_->frames() ? oldest_ms_ : held_.oldestMs(); }
  void takeAll(std::vector<QueuedRecord>& out) override;
  void setMaxBytes(uint64_t max_bytes) override {
    max_bytes_ = max_bytes;
    held_.setMaxBytes(std::min(max_bytes, kMaxHeldBytes));
  }

  /// What the records the disk refused may take in memory at most (less under a smaller cap).
  static constexpr uint64_t kMaxHeldBytes = 16u << 20;

  DurableLog& log() { return *log_; }
  /// Records the disk refused (full, I/O error), and so kept in memory; and those larger than
  /// a frame can hold, dropped.
  uint64_t writeFailures() const { return write_failures_; }
  /// Records waiting in memory because the disk refused them.
  uint64_t heldRecords() const { return held_.records(); }
  /// Of those, records dropped past kMaxHeldBytes (counted in push()'s drops too).
  uint64_t heldDropped() const { return held_dropped_; }

 private:
  explicit DurableQueue(std::unique_ptr<DurableLog> log, uint64_t max_bytes)
      : log_(std::move(log)), max_bytes_(max_bytes), held_(std::min(max_bytes, kMaxHeldBytes)) {}
  void peekOldest();
  /// Adds `r` to batch_ as a frame (tag: its drop class; payload: enqueued_ms, then its JSON);
  /// false when it is larger than a frame may be.
  bool addFrame(const QueuedRecord& r);
  /// Writes `records` to the log in order; those from the first the disk refused on go to
  /// held_. Returns how many were dropped (too large for a frame, or past held_'s cap).
  uint64_t write(std::vector<QueuedRecord>& records);
  /// Offers held_'s records to the disk again: the oldest alone first (a disk still full
  /// costs one small write, not all of them), then, if it took that one, the rest.
  uint64_t writeHeld();

  std::unique_ptr<DurableLog> log_;
  uint64_t max_bytes_;
  bool in_flight_ = false;
  LogPosition inflight_end_;
  uint64_t inflight_frames_ = 0;
  int64_t oldest_ms_ = 0;
  uint64_t write_failures_ = 0;
  std::vector<LogFrame> frames_;
  FrameBatch batch_;
  MemoryQueue held_;             // after every record in the log (see the class comment)
  bool held_in_flight_ = false;  // the batch in flight is held_'s
  uint64_t held_dropped_ = 0;
};

}  // namespace ganglion::edge
