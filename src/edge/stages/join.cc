#include "edge/stages/join.h"

#include <algorithm>
#include <utility>

#include "edge/state/state_codec.h"

namespace ganglion::edge {

std::vector<std::string> joinFieldNames(const JoinSpec& spec) {
  std::vector<std::string> names{spec.field()};
  for (const auto& p : spec.with) names.push_back(p.field());
  return names;
}

JoinStage::JoinStage(JoinSpec spec, const FieldNames& names, StringPool& strings, uint16_t origin)
    : spec_(std::move(spec)),
      origin_(origin),
      on_(strings.intern(spec_.on)),
      on_field_(names.find(spec_.field())),
      out_metric_(strings.intern(spec_.metric.empty() ? spec_.on : spec_.metric)) {
  for (const auto& p : spec_.with) {
    partners_.push_back(Partner{.metric = strings.intern(p.metric),
                                .device = p.device.empty() ? StringPool::kNotFound : strings.intern(p.device),
                                .field = names.find(p.field())});
    any_fixed_ = any_fixed_ || !p.device.empty();
  }
}

JoinStage::Role JoinStage::roleOf(const Record& r, const SeriesTable& series) const {
  if (r.kind != RecordKind::kReading || !r.hasValue() || r.series == kNoSeries) return Role::kNotJoined;
  const SeriesKey& key = series.key(r.series);
  bool partner = false, fixed = false;
  for (const Partner& p : partners_) {
    if (!takes(p, key)) continue;
    partner = true;
    fixed = fixed || p.device == key.device;
  }
  // A fixed device's readings are its partner readings, never driving ones (the loader
  // refuses a same-device partner of `on`).
  if (key.metric == on_ && !fixed) return Role::kDriving;
  return partner ? Role::kPartner : Role::kNotJoined;
}

void JoinStage::remember(size_t partner, StringId device, const Record& r, int64_t wall_ms,
                         StringPool& strings) {
  auto [entry, added] = recent_.try_emplace(keyOf(partner, device));
  if (added) strings.retain(device);
  entry->second.wall_ms = wall_ms;
  Recent& recent = entry->second.recent;
  const Sample s{r.ts, r.value, r.quality};
  auto at = recent.end();
  while (at != recent.begin() && std::prev(at)->ts > r.ts) --at;
  if (at != recent.begin() && std::prev(at)->ts == r.ts)
    *std::prev(at) = s;  // the same time again (a redelivery, a replay): the newer word counts
  else
    recent.insert(at, s);
  // A count, not `within` of the newest: a device's backlog (a SenML pack after an outage, one
  // metric's readings posted before another's) spans more than `within`, and its driving
  // readings still need the partner values of their own times.
  if (recent.size() > kJoinRecentPerSeries)
    recent.erase(recent.begin(),
                 recent.begin() + static_cast<ptrdiff_t>(recent.size() - kJoinRecentPerSeries));
}

const JoinStage::Sample* JoinStage::asOf(size_t partner, StringId device, int64_t ts) const {
  const auto it = recent_.find(keyOf(partner, device));
  if (it == recent_.end()) return nullptr;
  const Recent& recent = it->second.recent;
  auto after =
      std::upper_bound(recent.begin(), recent.end(), ts, [](int64_t t, const Sample& s) { return t < s.ts; });
  if (after == recent.begin()) return nullptr;
  const Sample& s = *std::prev(after);
  return ts - s.ts <= spec_.within_ms ? &s : nullptr;
}

bool JoinStage::settled(StringId device, int64_t ts) const {
  for (size_t p = 0; p < partners_.size(); ++p) {
    const auto it = recent_.find(keyOf(p, deviceFor(partners_[p], device)));
    if (it == recent_.end() || it->second.recent.empty() || it->second.recent.back().ts < ts) return false;
  }
  return true;
}

void JoinStage::emit(const Record& r, const Field* fields, std::string_view text, SeriesTable& series,
                     Batch& out) {
  SeriesId to = r.series;
  if (out_metric_ != on_) {
    if (r.series >= out_series_.size()) out_series_.resize(static_cast<size_t>(r.series) + 1, kNoSeries);
    if (out_series_[r.series] == kNoSeries) {
      SeriesKey key = series.key(r.series);
      key.metric = out_metric_;
      out_series_[r.series] = series.intern(key);
    }
    to = out_series_[r.series];
    if (to == kNoSeries) {
      ++counters.series_limit;
      return;
    }
  }
  const StringId device = series.key(r.series).device;
  std::array<const Sample*, kMaxJoinPartners> found{};
  bool complete = true;
  Quality quality = r.quality;
  for (size_t p = 0; p < partners_.size(); ++p) {
    found[p] = asOf(p, deviceFor(partners_[p], device), r.ts);
    if (!found[p])
      complete = false;
    else
      quality = std::max(quality, found[p]->quality);  // kGood < kUncertain < kBad
  }
  if (!complete && spec_.drop_incomplete) {
    ++counters.no_value;
    return;
  }
  Record joined = r;
  joined.origin = origin_;
  joined.series = to;
  joined.quality = quality;
  out.push(joined);
  for (uint16_t i = 0; i < r.field_count; ++i) {
    const Field& f = fields[i];
    if (f.id == on_field_ ||
        std::any_of(partners_.begin(), partners_.end(), [&](const Partner& p) { return p.field == f.id; }))
      continue;  // joined again below
    if (f.is_text)
      out.addText(f.id, text.substr(f.text_offset, f.text_len));
    else
      out.addNumber(f.id, f.number);
  }
  out.addNumber(on_field_, r.value);
  for (size_t p = 0; p < partners_.size(); ++p)
    if (found[p]) out.addNumber(partners_[p].field, found[p]->value);
  if (!complete) ++counters.incomplete;
  ++counters.out;
}

void JoinStage::emitHeld(const Held& h, SeriesTable& series, Batch& out) {
  emit(h.record, h.fields.data(), h.text, series, out);
}

void JoinStage::hold(const Batch& batch, const Record& r, int64_t wall_ms, SeriesTable& series, Batch& out) {
  const StringId device = series.key(r.series).device;
  std::deque<Held>& queue = held_[device];
  Held& h = queue.emplace_back();
  h.record = r;
  h.arrived_ms = wall_ms;
  const Field* f = batch.fields.data() + r.fields_begin;
  for (uint16_t i = 0; i < r.field_count; ++i) {
    Field copy = f[i];
    if (copy.is_text) {
      copy.text_offset = h.text.size();
      h.text.append(batch.textOf(f[i]));
    }
    h.fields.push_back(copy);
  }
  if (++held_count_ > kMaxJoinHeld) {  // this device floods: its oldest goes with what it has
    emitHeld(queue.front(), series, out);
    queue.pop_front();
    --held_count_;
  }
}

void JoinStage::release(StringId device, int64_t wall_ms, bool force, SeriesTable& series, Batch& out) {
  const auto it = held_.find(device);
  if (it == held_.end()) return;
  std::deque<Held>& queue = it->second;
  while (!queue.empty()) {
    const Held& h = queue.front();
    if (!force && wall_ms - h.arrived_ms < spec_.wait_ms && !settled(device, h.record.ts)) break;
    emitHeld(h, series, out);
    queue.pop_front();
    --held_count_;
  }
  if (queue.empty()) held_.erase(it);
}

void JoinStage::process(Batch& batch, StageContext& ctx) {
  const size_t n = batch.records.size();
  counters.in += n;
  roles_.resize(n);
  bool any = false, fixed_partner = false;
  // First the partners: a driving reading is joined with what its whole batch said.
  for (size_t i = 0; i < n; ++i) {
    const Record& r = batch.records[i];
    const Role role = roleOf(r, ctx.series);
    roles_[i] = role;
    any = any || role != Role::kNotJoined;
    if (role != Role::kPartner) continue;
    const SeriesKey& key = ctx.series.key(r.series);
    // A reading may be the partner of several (a fixed device's metric that is also a
    // same-device partner, for that device's own joins).
    for (size_t p = 0; p < partners_.size(); ++p) {
      if (!takes(partners_[p], key)) continue;
      remember(p, key.device, r, ctx.wall_ms, ctx.series.strings());
      const bool fixed = partners_[p].device != StringPool::kNotFound;
      fixed_partner = fixed_partner || fixed;
      if (spec_.wait_ms > 0 && !fixed) touched_.push_back(key.device);
    }
  }
  if (!any) {
    counters.out += n;
    return;
  }
  scratch_.clear();
  for (size_t i = 0; i < n; ++i) {
    const Record& r = batch.records[i];
    if (roles_[i] == Role::kNotJoined) {
      scratch_.copyFrom(batch, r);
      ++counters.out;
    } else if (roles_[i] == Role::kDriving) {
      if (spec_.wait_ms == 0) {
        emit(r, batch.fields.data() + r.fields_begin, batch.text, ctx.series, scratch_);
      } else {
        hold(batch, r, ctx.wall_ms, ctx.series, scratch_);
        touched_.push_back(ctx.series.key(r.series).device);
      }
    }
  }
  if (spec_.wait_ms > 0) {
    if (fixed_partner) {  // a shared partner spoke: any device may be settled now
      touched_.clear();
      for (const auto& [device, queue] : held_) touched_.push_back(device);
    }
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (StringId device : touched_) release(device, ctx.wall_ms, false, ctx.series, scratch_);
    touched_.clear();
  }
  std::swap(batch, scratch_);
}

void JoinStage::tick(Batch& out, StageContext& ctx) {
  if (held_.empty()) return;
  touched_.clear();
  for (const auto& [device, queue] : held_) touched_.push_back(device);
  for (StringId device : touched_) release(device, ctx.wall_ms, false, ctx.series, out);
  touched_.clear();
}

void JoinStage::flush(Batch& out, StageContext& ctx) {
  touched_.clear();
  for (const auto& [device, queue] : held_) touched_.push_back(device);
  for (StringId device : touched_) release(device, ctx.wall_ms, true, ctx.series, out);
  touched_.clear();
}

void JoinStage::abandonHeld() {
  held_.clear();
  held_count_ = 0;
}

uint64_t JoinStage::oldestSeq() const {
  uint64_t oldest = UINT64_MAX;
  for (const auto& [device, queue] : held_)
    for (const Held& h : queue) oldest = std::min(oldest, h.record.seq);
  return oldest;
}

void JoinStage::keepSeries(std::vector<uint8_t>& keep) const {
  for (const auto& [device, queue] : held_)
    for (const Held& h : queue)
      if (h.record.series < keep.size()) keep[h.record.series] = 1;
  keepMadeSeries(out_series_, keep);
}

void JoinStage::forgetSeries(const Forgetting& f) {
  forgetMadeSeries(out_series_, f);
  // Entries a kept series feeds stay (another source may send the same device's metric),
  // and so do those heard from lately (restored ones, whose series come back when they speak).
  std::vector<uint64_t> fed;
  for (SeriesId id = 0; id < f.series.idLimit(); ++id) {
    if (!f.kept(id) || !f.series.inUse(id)) continue;
    const SeriesKey& key = f.series.key(id);
    for (size_t p = 0; p < partners_.size(); ++p)
      if (takes(partners_[p], key)) fed.push_back(keyOf(p, key.device));
  }
  std::sort(fed.begin(), fed.end());
  for (auto it = recent_.begin(); it != recent_.end();) {
    if (it->second.wall_ms >= f.stale_before_ms || std::binary_search(fed.begin(), fed.end(), it->first)) {
      ++it;
      continue;
    }
    f.series.strings().release(static_cast<StringId>(it->first & 0xffffffffu));
    it = recent_.erase(it);
  }
}

// Partners are saved by what they are (metric, and the fixed device or none), not by their
// place in `with`: a reload that adds or removes a partner keeps what the others said.
std::string JoinStage::stateKey() const { return "join\x1fv2\x1f" + spec_.on; }

// Per partner series: the partner (metric, fixed device or ""), the series' device, then its
// readings oldest first.
void JoinStage::saveState(std::string& out, const SeriesTable& series) const {
  // In one order whatever the map's (partner, then device): the same partners save the same
  // bytes, however their devices' ids were handed out.
  std::vector<const std::pair<const uint64_t, Heard>*> entries;
  for (const auto& entry : recent_)
    if (!entry.second.recent.empty()) entries.push_back(&entry);
  auto device = [&](uint64_t key) { return series.strings().view(static_cast<StringId>(key & 0xffffffffu)); };
  std::sort(entries.begin(), entries.end(), [&](const auto* a, const auto* b) {
    if ((a->first >> 32) != (b->first >> 32)) return (a->first >> 32) < (b->first >> 32);
    return device(a->first) < device(b->first);
  });
  StateEncoder e(out);
  e.u32(static_cast<uint32_t>(entries.size()));
  for (const auto* entry : entries) {
    const auto& [key, heard] = *entry;
    const Recent& recent = heard.recent;
    const JoinPartner& partner = spec_.with[key >> 32];
    e.str(partner.metric);
    e.str(partner.device);
    e.str(device(key));
    e.u32(static_cast<uint32_t>(recent.size()));
    for (const Sample& s : recent) {
      e.i64(s.ts);
      e.f64(s.value);
      e.u8(static_cast<uint8_t>(s.quality));
    }
  }
}

Result<size_t> JoinStage::restoreState(std::string_view in, SeriesTable& series, int64_t now_ms,
                                       bool warmed_only) {
  StateDecoder d(in);
  const uint32_t count = d.u32();
  size_t restored = 0;
  for (uint32_t i = 0; i < count && d.ok(); ++i) {
    const std::string_view metric = d.str(), fixed = d.str(), device = d.str();
    const uint32_t n = d.u32();
    if (!d.ok() || n > kJoinRecentPerSeries || n > d.left() / 17) {
      d.fail();
      break;
    }
    Recent recent;
    for (uint32_t k = 0; k < n; ++k) {
      Sample s;
      s.ts = d.i64();
      s.value = d.f64();
      const uint8_t q = d.u8();
      s.quality = q <= static_cast<uint8_t>(Quality::kBad) ? static_cast<Quality>(q) : Quality::kBad;
      if (!recent.empty() && s.ts <= recent.back().ts) d.fail();  // oldest first, one per time
      recent.push_back(s);
    }
    if (!d.ok()) break;
    const auto partner = std::find_if(spec_.with.begin(), spec_.with.end(), [&](const JoinPartner& p) {
      return p.metric == metric && p.device == fixed;
    });
    if (partner == spec_.with.end()) continue;  // a partner no longer joined
    // A restart keeps what can still be joined with a reading arriving now.
    if (recent.empty() || (warmed_only && recent.back().ts < now_ms - spec_.within_ms)) continue;
    const StringId id = series.strings().acquire(device);
    auto [entry, added] = recent_.try_emplace(keyOf(static_cast<size_t>(partner - spec_.with.begin()), id));
    if (!added) series.strings().release(id);  // named twice: the last counts
    entry->second = Heard{std::move(recent), now_ms};
    ++restored;
  }
  if (!d.ok() || !d.done()) return Error("join: its state does not parse");
  return restored;
}

}  // namespace ganglion::edge
