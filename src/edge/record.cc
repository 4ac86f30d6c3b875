#include "edge/record.h"

#include <algorithm>
#include <functional>

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

StringId StringPool::add(std::string_view s, uint32_t refs) {
  StringId id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
    storage_[id].assign(s);
    views_[id] = storage_[id];
    refs_[id] = refs;
  } else {
    id = static_cast<StringId>(views_.size());
    views_.push_back(storage_.emplace_back(s));
    refs_.push_back(refs);
  }
  ids_.emplace(views_[id], id);
  return id;
}

StringId StringPool::intern(std::string_view s) {
  if (auto it = ids_.find(s); it != ids_.end()) {
    refs_[it->second] = kForGood;
    return it->second;
  }
  return add(s, kForGood);
}

StringId StringPool::acquire(std::string_view s) {
  if (auto it = ids_.find(s); it != ids_.end()) {
    retain(it->second);
    return it->second;
  }
  return add(s, 1);
}

void StringPool::retain(StringId id) {
  if (refs_[id] != kForGood) ++refs_[id];
}

void StringPool::release(StringId id) {
  if (refs_[id] == kForGood || --refs_[id] > 0) return;
  ids_.erase(views_[id]);
  std::string().swap(storage_[id]);  // its memory goes, not only its length
  views_[id] = {};
  free_.push_back(id);
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
    if (auto it = ids_.find(key); it != ids_.end()) {
      last_seen_[it->second] = now_ms_;
      return it->second;
    }
  }
  if (size() >= max_series_) return kNoSeries;
  return add(SeriesKey{strings_.acquire(source), strings_.acquire(device), strings_.acquire(metric)});
}

SeriesId SeriesTable::intern(const SeriesKey& key) {
  if (auto it = ids_.find(key); it != ids_.end()) {
    last_seen_[it->second] = now_ms_;
    return it->second;
  }
  if (size() >= max_series_) return kNoSeries;
  strings_.retain(key.source);
  strings_.retain(key.device);
  strings_.retain(key.metric);
  return add(key);
}

SeriesId SeriesTable::add(const SeriesKey& key) {
  SeriesId id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
    keys_[id] = key;
    last_seen_[id] = now_ms_;
  } else {
    id = static_cast<SeriesId>(keys_.size());
    keys_.push_back(key);
    last_seen_.push_back(now_ms_);
  }
  ids_.emplace(key, id);
  return id;
}

size_t SeriesTable::forgetAllBut(const std::vector<uint8_t>& keep) {
  size_t forgotten = 0;
  for (SeriesId id = 0; id < keys_.size(); ++id) {
    if (last_seen_[id] == kFree || (id < keep.size() && keep[id])) continue;
    const SeriesKey key = keys_[id];
    ids_.erase(key);
    strings_.release(key.source);
    strings_.release(key.device);
    strings_.release(key.metric);
    keys_[id] = SeriesKey{};
    last_seen_[id] = kFree;
    free_.push_back(id);
    ++forgotten;
  }
  // Lowest ids first: vectors indexed by SeriesId stay dense at their low end.
  std::sort(free_.begin(), free_.end(), std::greater<>());
  return forgotten;
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
