#include "edge/record.h"

namespace ganglion::edge {

std::string_view qualityName(Quality q) {
  switch (q) {
    case Quality::kGood:
      return "good";
    case Quality::kUncertain:
      return "uncertain";
    case Quality::kBad:
      return "bad";
  }
  return "bad";
}

std::string_view recordKindName(RecordKind k) {
  switch (k) {
    case RecordKind::kReading:
      return "reading";
    case RecordKind::kWindow:
      return "window";
    case RecordKind::kEvent:
      return "event";
    case RecordKind::kSummary:
      return "summary";
  }
  return "reading";
}

StringId StringPool::intern(std::string_view s) {
  if (auto it = ids_.find(s); it != ids_.end()) return it->second;
  const auto id = static_cast<StringId>(views_.size());
  const std::string& stored = storage_.emplace_back(s);
  views_.push_back(stored);
  ids_.emplace(stored, id);
  return id;
}

StringId StringPool::find(std::string_view s) const {
  auto it = ids_.find(s);
  return it == ids_.end() ? kNotFound : it->second;
}

SeriesId SeriesTable::intern(std::string_view source, std::string_view device, std::string_view metric) {
  // Look the names up before interning them: a full table must not grow the string pool
  // with names of series it refuses.
  SeriesKey key{strings_.find(source), strings_.find(device), strings_.find(metric)};
  if (key.source != StringPool::kNotFound && key.device != StringPool::kNotFound &&
      key.metric != StringPool::kNotFound) {
    if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  }
  if (keys_.size() >= max_series_) return kNoSeries;
  return intern(SeriesKey{strings_.intern(source), strings_.intern(device), strings_.intern(metric)});
}

SeriesId SeriesTable::intern(const SeriesKey& key) {
  if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  if (keys_.size() >= max_series_) return kNoSeries;
  const auto id = static_cast<SeriesId>(keys_.size());
  keys_.push_back(key);
  ids_.emplace(key, id);
  return id;
}

FieldId FieldNames::intern(std::string_view name, Type type) {
  if (auto it = ids_.find(name); it != ids_.end()) return it->second;
  const auto id = static_cast<FieldId>(names_.size());
  names_.emplace_back(name);
  types_.push_back(type);
  ids_.emplace(std::string(name), id);
  return id;
}

FieldId FieldNames::find(std::string_view name) const {
  auto it = ids_.find(name);
  return it == ids_.end() ? kNoField : it->second;
}

void Batch::copyFrom(const Batch& from, const Record& r) {
  push(r);
  const Field* f = from.fields.data() + r.fields_begin;
  for (uint16_t i = 0; i < r.field_count; ++i) {
    if (f[i].is_text)
      addText(f[i].id, from.textOf(f[i]));
    else
      addNumber(f[i].id, f[i].number);
  }
}

}  // namespace ganglion::edge
