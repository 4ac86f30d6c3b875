#include "edge/stages/map.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ganglion::edge {

MapStage::MapStage(Compiled compiled, FieldId attrs_field)
    : c_(std::move(compiled)), attrs_field_(attrs_field) {}

SeriesId MapStage::renamed(SeriesId series, SeriesTable& table) {
  if (series >= renamed_.size()) renamed_.resize(std::max<size_t>(table.idLimit(), series + 1), kNoSeries);
  SeriesId& slot = renamed_[series];
  if (slot != kNoSeries) return slot;
  SeriesKey key = table.key(series);
  key.metric = c_.metric;
  slot = table.intern(key);  // kNoSeries (table full) is asked again next time
  return slot;
}

void MapStage::rewriteAttrs(Batch& batch, size_t i, StageContext& ctx) {
  Record& r = batch.records[i];
  attrs_.clear();
  // The old attributes, less those this map sets.
  if (const Field* old = attrs_field_ == FieldNames::kNoField ? nullptr : batch.findField(r, attrs_field_)) {
    const std::string_view text = batch.textOf(*old);
    size_t at = 0;
    expr::AttrEntry e;
    while (expr::nextAttr(text, at, e)) {
      const bool replaced =
          (!c_.unit.empty() && e.key == "unit") ||
          std::any_of(c_.set.begin(), c_.set.end(), [&](const auto& s) { return s.first == e.key; });
      if (!replaced) expr::appendAttr(attrs_, e.key, e.value, e.is_number);
    }
  }
  if (!c_.unit.empty()) expr::appendAttr(attrs_, "unit", c_.unit, false);
  const expr::Input in{&r, &batch, &ctx.series};
  for (const auto& [name, program] : c_.set) {
    const expr::Value v = ctx.evaluator.run(program, in);  // valid until the next run: used now
    switch (v.type) {
      case expr::Type::kNumber:
        expr::appendAttr(attrs_, name, fmt::format("{}", v.number), true);
        break;
      case expr::Type::kBool:
        expr::appendAttr(attrs_, name, v.number != 0 ? "1" : "0", true);
        break;
      case expr::Type::kString:
        expr::appendAttr(attrs_, name, v.view(), false);
        break;
      default:  // null: the attribute is removed
        break;
    }
  }
  // The record's fields move to the arena's end, the attributes replaced (or added).
  fields_.assign(batch.fields.begin() + r.fields_begin,
                 batch.fields.begin() + r.fields_begin + r.field_count);
  r.fields_begin = static_cast<uint32_t>(batch.fields.size());
  r.field_count = 0;
  for (const Field& f : fields_) {
    if (f.id == attrs_field_) continue;
    batch.fields.push_back(f);
    ++r.field_count;
  }
  if (attrs_.empty() || attrs_field_ == FieldNames::kNoField) return;
  Field& f = batch.fields.emplace_back();
  f.id = attrs_field_;
  f.is_text = true;
  f.text_offset = batch.text.size();
  f.text_len = static_cast<uint32_t>(attrs_.size());
  batch.text.append(attrs_);
  ++r.field_count;
}

void MapStage::process(Batch& batch, StageContext& ctx) {
  const size_t n = batch.records.size();
  counters.in += n;
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    if (kept != i) batch.records[kept] = batch.records[i];
    const expr::Input in{&batch.records[kept], &batch, &ctx.series};
    if (c_.when && !ctx.evaluator.test(*c_.when, in)) {
      ++kept;
      continue;
    }
    // Every expression reads the record as it came in: the value is written last.
    double value = batch.records[kept].value;
    if (c_.value) {
      const expr::Value v = ctx.evaluator.run(*c_.value, in);
      value = v.type == expr::Type::kNumber ? v.number : std::numeric_limits<double>::quiet_NaN();
      if (v.type != expr::Type::kNumber) ++counters.no_value;
    }
    if (!c_.unit.empty() || !c_.set.empty()) rewriteAttrs(batch, kept, ctx);
    Record& r = batch.records[kept];
    r.value = value;
    if (c_.metric != StringPool::kNotFound && r.series != kNoSeries) {
      const SeriesId to = renamed(r.series, ctx.series);
      if (to == kNoSeries) {  // the series table is full: dropped, as a window would
        ++counters.series_limit;
        continue;
      }
      r.series = to;
    }
    ++kept;
  }
  batch.records.resize(kept);
  counters.out += kept;
}

}  // namespace ganglion::edge
