#include "edge/rules/rule_runner.h"

#include <fmt/format.h>

#include <utility>
#include <vector>

#include "base/strings.h"
#include "edge/record_json.h"
#include "edge/state/state_codec.h"

namespace ganglion::edge {

std::string RuleRunner::keyOf(const Record& r, const Pipeline& pipeline) const {
  if (config_->per == "rule" || r.series == kNoSeries) return {};
  const SeriesTable& s = pipeline.series();
  std::string key(s.source(r.series));
  key.push_back('\0');
  key += s.device(r.series);
  if (config_->per == "series") {
    key.push_back('\0');
    key += s.metric(r.series);
  }
  return key;
}

bool RuleRunner::fires(expr::Evaluator& ev, const Record& r, const Batch& batch, const Pipeline& pipeline) {
  const expr::Input in{&r, &batch, &pipeline.series()};
  const RuleConfig& c = *config_;
  const bool stateful = c.clear_program || c.hold_off.count() > 0;
  State* state = nullptr;
  if (stateful) {
    key_ = keyOf(r, pipeline);
    if (auto it = states_.find(key_); it != states_.end()) state = &it->second;
  }
  if (state && state->raised && c.clear_program && ev.test(*c.clear_program, in)) {
    state->raised = false;
    ++changes_;
    stats_->cleared.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!ev.test(*c.when_program, in)) return false;
  stats_->matched.fetch_add(1, std::memory_order_relaxed);
  if (stateful && !state) {
    // A key gets state when it first matches (records that do not match cost nothing), and
    // keys whose hold-off is over and that are not raised make room when the table is full.
    if (states_.size() >= kMaxKeys) forgetExpired(r.ts);
    if (states_.size() < kMaxKeys) {
      state = &states_.emplace(key_, State{}).first->second;
    } else {
      stats_->untracked.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (state) {
    // Held while the record is earlier than the last firing plus hold_off: a record older
    // than the last firing (a late one, another device's clock under per: rule) is held too.
    const bool held =
        state->fired_once && c.hold_off.count() > 0 && r.ts < state->last_fired_ts + c.hold_off.count();
    if (state->raised || held) {
      stats_->suppressed.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    state->fired_once = true;
    state->last_fired_ts = r.ts;
    ++changes_;
    if (c.clear_program) state->raised = true;
  }
  stats_->fired.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::string RuleRunner::stateKey() const {
  const RuleConfig& c = *config_;
  return fmt::format("rule\x1f{}\x1f{}\x1f{}\x1f{}", c.name, c.per, c.when, c.clear_when);
}

void RuleRunner::saveState(std::string& out) const {
  StateEncoder e(out);
  uint32_t n = 0;
  for (const auto& [key, st] : states_) n += st.raised || st.fired_once;
  e.u32(n);
  for (const auto& [key, st] : states_) {
    if (!st.raised && !st.fired_once) continue;
    e.str(key);
    e.u8(static_cast<uint8_t>((st.raised ? 1 : 0) | (st.fired_once ? 2 : 0)));
    e.i64(st.last_fired_ts);
  }
}

bool RuleRunner::restoreState(std::string_view in, size_t& restored) {
  restored = 0;
  StateDecoder d(in);
  const uint32_t n = d.u32();
  std::vector<std::pair<std::string_view, State>> entries;
  for (uint32_t i = 0; i < n && d.ok(); ++i) {
    const std::string_view key = d.str();
    const uint8_t flags = d.u8();
    const int64_t ts = d.i64();
    if (flags > 3) d.fail();
    entries.push_back({key, State{(flags & 1) != 0, (flags & 2) != 0, ts}});
    if (entries.size() > kMaxKeys) d.fail();
  }
  if (!d.ok() || !d.done()) return false;
  if (!states_.empty()) return true;  // this runner has state of its own: it wins
  for (const auto& [key, st] : entries)
    if (states_.emplace(key, st).second) ++restored;
  return true;
}

void RuleRunner::forgetExpired(int64_t now_ts) {
  if (sweep_pause_ > 0) {
    --sweep_pause_;
    return;
  }
  const int64_t hold_off = config_->hold_off.count();
  const size_t before = states_.size();
  std::erase_if(states_, [&](const auto& entry) {
    const State& st = entry.second;
    return !st.raised && (!st.fired_once || st.last_fired_ts + hold_off <= now_ts);
  });
  // Little freed: do not walk the whole table again for the next thousand matches.
  if (before - states_.size() < kMaxKeys / 100) sweep_pause_ = 1000;
}

std::string RuleRunner::topic(const TopicTemplate& t, const Record& r, const Batch& batch,
                              const Pipeline& pipeline) const {
  std::string out;
  const SeriesTable& s = pipeline.series();
  const bool has_series = r.series != kNoSeries;
  for (const auto& piece : t.pieces) {
    const size_t filled_from = out.size();
    if (!piece.placeholder) {
      out += piece.text;
      continue;
    } else if (piece.text == "device") {
      if (has_series) out += s.device(r.series);
    } else if (piece.text == "metric") {
      if (has_series) out += s.metric(r.series);
    } else if (piece.text == "source") {
      if (has_series) out += s.source(r.series);
    } else if (piece.text == "kind") {
      out += recordKindName(r.kind);
    } else if (piece.text == "rule") {
      out += config_->name;
    } else if (piece.text == "pipeline") {
      out += pipeline.name();
    } else {
      const FieldId id = pipeline.fieldNames().find(piece.text);
      if (const Field* f = id == FieldNames::kNoField ? nullptr : batch.findField(r, id); f && f->is_text)
        out += batch.textOf(*f);
    }
    // A value fills one topic level: a '/' in it (a device named "a/b") would add levels and
    // reach another device's or rule's topics.
    if (out.find('/', filled_from) != std::string::npos) return {};
  }
  if (!mqtt::checkTopicName(out).empty()) return {};
  return out;
}

std::string RuleRunner::payload(const Record& r, const Batch& batch, const Pipeline& pipeline) const {
  std::string out;
  appendRecordJson(out, r, batch, pipeline, config_->name);
  out.pop_back();  // the closing brace
  out += ",\"rule\":\"";
  appendJsonEscaped(out, config_->name);
  out += "\"}";
  return out;
}

}  // namespace ganglion::edge
