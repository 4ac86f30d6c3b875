#include "edge/record_json.h"

#include <fmt/format.h>

#include "base/strings.h"

namespace ganglion::edge {
namespace {

void appendString(std::string& out, std::string_view s) {
  out.push_back('"');
  appendJsonEscaped(out, s);
  out.push_back('"');
}

/// Attributes as an object; entries that are not well-formed are left out.
void appendAttrs(std::string& out, std::string_view attrs) {
  out.push_back('{');
  bool first = true;
  size_t at = 0;
  expr::AttrEntry e;
  while (expr::nextAttr(attrs, at, e)) {
    if (!first) out.push_back(',');
    first = false;
    appendString(out, e.key);
    out.push_back(':');
    if (!e.is_number) {
      appendString(out, e.value);
    } else if (const auto d = parseDouble(e.value)) {
      appendJsonNumber(out, *d);
    } else {
      out += "null";
    }
  }
  out.push_back('}');
}

}  // namespace

namespace {

/// A part of a derived record's id: '%' and '/' percent-encoded, so that '/' separates parts
/// unambiguously (a device named "a/b" and one named "a" with metric "b/c" differ).
void appendIdPart(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '%')
      out += "%25";
    else if (c == '/')
      out += "%2F";
    else
      out.push_back(c);
  }
}

}  // namespace

void appendRecordId(std::string& out, const Record& r, const Pipeline& pipeline) {
  if (r.kind == RecordKind::kReading) {
    appendIdPart(out, pipeline.originName(r.origin));
    fmt::format_to(std::back_inserter(out), "-{}", r.seq);
    return;
  }
  appendIdPart(out, pipeline.originName(r.origin));
  const SeriesTable& s = pipeline.series();
  if (r.series != kNoSeries) {
    for (std::string_view part : {s.source(r.series), s.device(r.series), s.metric(r.series)}) {
      out.push_back('/');
      appendIdPart(out, part);
    }
  }
  fmt::format_to(std::back_inserter(out), "/{}", r.ts);
  // A window (or FFT block) also names its oldest reading: reloads A→B→A within one interval
  // give A's settings two partial windows of the same start, and only their readings differ.
  // The number is the ingest log's, so a window rebuilt by replay after a crash keeps its id.
  if (r.kind == RecordKind::kWindow) fmt::format_to(std::back_inserter(out), "-{}", r.seq);
}

void appendRecordJson(std::string& out, const Record& r, const Batch& batch, const Pipeline& pipeline,
                      std::string_view id_suffix) {
  out += "{\"id\":\"";
  std::string id;
  appendRecordId(id, r, pipeline);
  if (!id_suffix.empty()) {
    id.push_back('/');
    appendIdPart(id, id_suffix);
  }
  appendJsonEscaped(out, id);
  out.push_back('"');
  const SeriesTable& s = pipeline.series();
  const std::pair<const char*, std::string_view> names[] = {
      {"source", r.series == kNoSeries ? "" : s.source(r.series)},
      {"device", r.series == kNoSeries ? "" : s.device(r.series)},
      {"metric", r.series == kNoSeries ? "" : s.metric(r.series)},
  };
  for (const auto& [key, value] : names) {
    fmt::format_to(std::back_inserter(out), ",\"{}\":", key);
    if (value.empty())
      out += "null";
    else
      appendString(out, value);
  }
  fmt::format_to(std::back_inserter(out), ",\"ts\":{},\"kind\":\"{}\"", r.ts, recordKindName(r.kind));
  if (r.hasValue()) {
    out += ",\"value\":";
    appendJsonNumber(out, r.value);
  }
  fmt::format_to(std::back_inserter(out), ",\"quality\":\"{}\"", qualityName(r.quality));
  const FieldNames& names_table = pipeline.fieldNames();
  const Field* f = batch.fields.data() + r.fields_begin;
  for (uint16_t i = 0; i < r.field_count; ++i) {
    out += ",\"";
    appendJsonEscaped(out, names_table.name(f[i].id));
    out += "\":";
    if (!f[i].is_text)
      appendJsonNumber(out, f[i].number);
    else if (names_table.name(f[i].id) == "attrs")
      appendAttrs(out, batch.textOf(f[i]));
    else
      appendString(out, batch.textOf(f[i]));
  }
  out.push_back('}');
}

}  // namespace ganglion::edge
