#include "edge/rules/rule_runner.h"

#include "base/strings.h"
#include "edge/record_json.h"

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
    auto it = states_.find(key_);
    if (it == states_.end() && states_.size() < kMaxKeys) it = states_.emplace(key_, State{}).first;
    if (it != states_.end()) state = &it->second;
  }
  if (state && state->raised && c.clear_program && ev.test(*c.clear_program, in)) {
    state->raised = false;
    stats_->cleared.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!ev.test(*c.when_program, in)) return false;
  stats_->matched.fetch_add(1, std::memory_order_relaxed);
  if (stateful && !state) {
    stats_->untracked.fetch_add(1, std::memory_order_relaxed);
  } else if (state) {
    const bool held = state->fired_once && c.hold_off.count() > 0 && r.ts >= state->last_fired_ts &&
                      r.ts - state->last_fired_ts < c.hold_off.count();
    if (state->raised || held) {
      stats_->suppressed.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    state->fired_once = true;
    state->last_fired_ts = r.ts;
    if (c.clear_program) state->raised = true;
  }
  stats_->fired.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::string RuleRunner::topic(const TopicTemplate& t, const Record& r, const Batch& batch,
                              const Pipeline& pipeline) const {
  std::string out;
  const SeriesTable& s = pipeline.series();
  const bool has_series = r.series != kNoSeries;
  for (const auto& piece : t.pieces) {
    if (!piece.placeholder) {
      out += piece.text;
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
