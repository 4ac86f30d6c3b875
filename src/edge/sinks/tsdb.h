// The `tsdb` sink's store: records kept in a SQLite file in `edge.data_dir`
// (`tsdb/<sink>.sqlite`), indexed by series and time, pruned past the sink's retention, and
// read back through the admin API (GET /edge/sinks/<name>/records).
//
// Threads: a TsdbStore is written by its sink's delivery loop, one call at a time, on the
// blocking pool. Queries open a connection of their own, also on the blocking pool; SQLite's
// rollback journal (store::Database's choice: no WAL memory map to lose) makes a query and a
// batch's commit wait for each other, at most the busy timeout.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "store/sqlite.h"

namespace ganglion::edge {

/// What GET /edge/sinks/<name>/records asks for: exact device, metric, source and kind;
/// ts in [from, to) (epoch ms); at most `limit` records, oldest first (or newest first), after
/// the cursor a previous page ended on. With `every`, buckets instead of records: per device,
/// metric and interval of `every` (aligned to the epoch), the count, mean, min, max and sum
/// of `field` (a number member of the records: `value`, a window's `mean`, ...).
struct TsdbQuery {
  std::optional<std::string> device, metric, source, kind;
  std::optional<int64_t> from, to;
  uint32_t limit = 1000;
  bool newest_first = false;
  std::optional<std::pair<int64_t, int64_t>> after;  ///< (ts, row) of the last record already seen
  int64_t every_ms = 0;                              ///< 0: records, not buckets
  std::string field = "value";                       ///< what buckets aggregate
  static constexpr uint32_t kMaxLimit = 10'000;
};

/// The query from the request's query string (undecoded); a 400 error naming the parameter
/// and what it takes otherwise (an unknown parameter too: a misspelt filter must not
/// silently return everything).
Result<TsdbQuery> parseTsdbQuery(std::string_view query_string);

class TsdbStore {
 public:
  /// Opens (creating it and its directory) the store at `path`.
  static Result<std::unique_ptr<TsdbStore>> open(const std::string& path);

  struct Written {
    uint32_t stored = 0;      ///< new records
    uint32_t duplicates = 0;  ///< ids stored already (a batch sent again after a crash)
    uint32_t unusable = 0;    ///< not a record (no id or ts)
    std::string unusable_reason;
  };
  /// Stores the records of `records_json` (JSON texts, comma-separated, as RecordQueue::take
  /// hands them) in one transaction: all or none.
  Result<Written> write(std::string_view records_json);
  /// Deletes the records whose ts is before `before_ms`; how many went.
  Result<uint64_t> prune(int64_t before_ms);
  /// When the records take more than `max_bytes` of the file, deletes the oldest until they
  /// take 90 % of it: readings first, then windows, events and summaries last (what matters
  /// longest goes last). How many went.
  Result<uint64_t> shrinkTo(uint64_t max_bytes);

  /// Runs `q` on the store at `path` with a connection of its own: the response body,
  /// `{"records":[...],"count":n}` plus `"next_after"` (the cursor for the next page) when
  /// `limit` records came back; with `every`, `{"buckets":[{device, metric, ts, count, mean,
  /// min, max, sum}],"count":n}`. A store not yet written holds no records.
  static Result<std::string> query(const std::string& path, const TsdbQuery& q);

 private:
  explicit TsdbStore(std::unique_ptr<store::Database> db) : db_(std::move(db)) {}
  std::unique_ptr<store::Database> db_;
};

}  // namespace ganglion::edge
