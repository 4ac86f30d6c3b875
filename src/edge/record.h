// The edge data plane's unit of data: a record (a reading, a window's aggregates, a detector's
// event, a rule's summary), the series it belongs to, and the batch records travel in.
//
// A record is 40 bytes with no heap parts: its series is an index into the pipeline's series
// table (source, device and metric interned once), and whatever it carries beyond one value
// (aggregates, a score, a reason) lives in its batch's field and text arenas, so a stage
// keeps per-series state in flat vectors and a batch is reused without allocating.
// A pipeline, its series table and its batches belong to one worker thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "base/string_map.h"

namespace ganglion::edge {

using SeriesId = uint32_t;
using FieldId = uint16_t;
using StringId = uint32_t;
inline constexpr SeriesId kNoSeries = std::numeric_limits<SeriesId>::max();
inline constexpr StringId kEmptyString = 0;  ///< every StringPool holds "" as id 0

enum class Quality : uint8_t { kGood, kUncertain, kBad };
enum class RecordKind : uint8_t { kReading, kWindow, kEvent, kSummary };

std::string_view qualityName(Quality q);
std::string_view recordKindName(RecordKind k);

/// Strings interned once per pipeline (device names, metrics, sources). Two kinds of holder:
/// intern() keeps a string for the pool's life (names a config uses: a map's metric, a join's
/// fixed device); acquire()/release() count holders (the series table, a join's partner
/// values), and the last release of a string nothing interned for good frees it: its id may
/// then name another string. A view never moves while its string is held. Owner's thread.
class StringPool {
 public:
  StringPool() { intern(""); }
  /// The id of `s`, kept for the pool's life.
  StringId intern(std::string_view s);
  /// The id of `s`, with one more holder (release() gives it back).
  StringId acquire(std::string_view s);
  /// One more holder of the string `id` (held already).
  void retain(StringId id);
  /// One holder less; the last one frees a string not interned for good.
  void release(StringId id);
  /// The id of `s`, or nullopt-like kNotFound when it was never interned.
  static constexpr StringId kNotFound = std::numeric_limits<StringId>::max();
  StringId find(std::string_view s) const;
  std::string_view view(StringId id) const { return views_[id]; }
  /// Strings held now.
  size_t size() const { return views_.size() - free_.size(); }

 private:
  static constexpr uint32_t kForGood = std::numeric_limits<uint32_t>::max();
  StringId add(std::string_view s, uint32_t refs);

  std::deque<std::string> storage_;  // deque: a string's storage never moves
  std::vector<std::string_view> views_;
  std::vector<uint32_t> refs_;  // holders (kForGood: interned for good)
  std::vector<StringId> free_;  // ids of freed strings, handed out again
  std::unordered_map<std::string_view, StringId> ids_;
};

/// A series: where readings come from (connector), which device, which metric.
struct SeriesKey {
  StringId source = kEmptyString;
  StringId device = kEmptyString;
  StringId metric = kEmptyString;
  bool operator==(const SeriesKey&) const = default;
};

/// The pipeline's series, interned once: readings carry a SeriesId, stages index flat vectors
/// with it. At most `max_series` (new series past it are refused, and counted by the caller:
/// a device inventing names cannot grow memory without bound). A series idle for long may be
/// forgotten (Pipeline::forgetIdle, once every stage has dropped what it kept for it): its id
/// is then handed out again. Pipeline's worker.
class SeriesTable {
 public:
  explicit SeriesTable(size_t max_series = 100'000) : max_series_(max_series) {}
  /// The series of (source, device, metric), created on first sight; kNoSeries when the table
  /// is full. Either way of finding it marks it seen at the clock (setClock).
  SeriesId intern(std::string_view source, std::string_view device, std::string_view metric);
  SeriesId intern(const SeriesKey& key);
  /// The time intern() marks series seen at (epoch ms): set before each batch.
  void setClock(int64_t now_ms) { now_ms_ = now_ms; }
  /// When intern() last found or made `id` (epoch ms).
  int64_t lastSeen(SeriesId id) const { return last_seen_[id]; }
  /// Whether `id` names a series now (not forgotten, not yet handed out).
  bool inUse(SeriesId id) const { return id < keys_.size() && last_seen_[id] != kFree; }
  /// Forgets every series in use whose `keep` entry is 0 (every stage dropped what it kept for
  /// them first): their ids, and names no one else holds, are handed out again. Returns how
  /// many it forgot.
  size_t forgetAllBut(const std::vector<uint8_t>& keep);
  const SeriesKey& key(SeriesId id) const { return keys_[id]; }
  std::string_view source(SeriesId id) const { return strings_.view(keys_[id].source); }
  std::string_view device(SeriesId id) const { return strings_.view(keys_[id].device); }
  std::string_view metric(SeriesId id) const { return strings_.view(keys_[id].metric); }
  StringPool& strings() { return strings_; }
  const StringPool& strings() const { return strings_; }
  /// Series in use.
  size_t size() const { return keys_.size() - free_.size(); }
  /// One past the highest id handed out: what vectors indexed by SeriesId are sized to.
  size_t idLimit() const { return keys_.size(); }
  size_t maxSeries() const { return max_series_; }

 private:
  struct KeyHash {
    size_t operator()(const SeriesKey& k) const {
      return (uint64_t{k.source} * 0x9E3779B97F4A7C15ull) ^ (uint64_t{k.device} * 0xC2B2AE3D27D4EB4Full) ^
             (uint64_t{k.metric} * 0x165667B19E3779F9ull);
    }
  };
  static constexpr int64_t kFree = std::numeric_limits<int64_t>::min();
  /// Adds `key` (its strings held already) as a new series.
  SeriesId add(const SeriesKey& key);

  size_t max_series_;
  int64_t now_ms_ = 0;
  StringPool strings_;
  std::vector<SeriesKey> keys_;
  std::vector<int64_t> last_seen_;  // kFree: the id is free
  std::vector<SeriesId> free_;
  std::unordered_map<SeriesKey, SeriesId, KeyHash> ids_;
};

/// Names of the fields records carry beyond their value (aggregates, detector outputs), one
/// table per config, so a FieldId means the same in every pipeline of it. Main thread builds it
/// at config load; read-only afterwards.
class FieldNames {
 public:
  enum class Type : uint8_t { kNumber, kText };
  FieldId intern(std::string_view name, Type type);
  /// kNoField when unknown.
  static constexpr FieldId kNoField = std::numeric_limits<FieldId>::max();
  FieldId find(std::string_view name) const;
  std::string_view name(FieldId id) const { return names_[id]; }
  Type type(FieldId id) const { return types_[id]; }
  size_t size() const { return names_.size(); }

 private:
  std::deque<std::string> names_;
  std::vector<Type> types_;
  StringMap<FieldId> ids_;
};

/// One named value of a record: a number, or text held in the batch's text arena.
struct Field {
  FieldId id = 0;
  bool is_text = false;
  uint32_t text_len = 0;
  union {
    double number;
    uint64_t text_offset;
  };
  Field() : number(0) {}
};

/// A record. `value` is NaN when the record has none (a window's record carries aggregates in
/// fields instead). `origin` and `seq` make a reading's id (`<origin name>-<seq>` on the wire);
/// `seq` is the ingest log's number of a reading, and of a derived record the number of the
/// reading it came from (an event) or of its oldest one (a window, an FFT block), which a
/// replay after a crash gives it again.
struct Record {
  int64_t ts = 0;  ///< event time, epoch milliseconds (a window's record: the window's start)
  double value = std::numeric_limits<double>::quiet_NaN();
  uint64_t seq = 0;
  SeriesId series = kNoSeries;
  uint32_t fields_begin = 0;
  uint16_t field_count = 0;
  uint16_t origin = 0;
  RecordKind kind = RecordKind::kReading;
  Quality quality = Quality::kGood;

  bool hasValue() const { return !std::isnan(value); }
};
static_assert(sizeof(Record) == 40, "records stay small: they are copied by the million");

/// Records in flight between stages, with the arenas their fields and texts live in. Cleared
/// and reused (its vectors keep their capacity). Stages edit a batch in place.
struct Batch {
  std::vector<Record> records;
  std::vector<Field> fields;
  std::string text;

  void clear() {
    records.clear();
    fields.clear();
    text.clear();
  }
  size_t size() const { return records.size(); }
  bool empty() const { return records.empty(); }

  /// Appends `r` (fields not yet added: use addField/addText right after, on records.back()).
  Record& push(const Record& r) {
    Record& out = records.emplace_back(r);
    out.fields_begin = static_cast<uint32_t>(fields.size());
    out.field_count = 0;
    return out;
  }
  /// Adds a field to the last pushed record.
  void addNumber(FieldId id, double v) {
    Field& f = fields.emplace_back();
    f.id = id;
    f.number = v;
    ++records.back().field_count;
  }
  void addText(FieldId id, std::string_view s) {
    Field& f = fields.emplace_back();
    f.id = id;
    f.is_text = true;
    f.text_offset = text.size();
    f.text_len = static_cast<uint32_t>(s.size());
    text.append(s);
    ++records.back().field_count;
  }
  /// Copies record `r` of `from` (with its fields and texts) to the end of this batch.
  void copyFrom(const Batch& from, const Record& r);

  const Field* findField(const Record& r, FieldId id) const {
    const Field* f = fields.data() + r.fields_begin;
    for (uint16_t i = 0; i < r.field_count; ++i)
      if (f[i].id == id) return &f[i];
    return nullptr;
  }
  std::string_view textOf(const Field& f) const {
    return std::string_view(text).substr(f.text_offset, f.text_len);
  }
};

}  // namespace ganglion::edge
