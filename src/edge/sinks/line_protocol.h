// Records as InfluxDB line protocol, for sinks of kind `influxdb`: one line per record,
//   vibration,device=pump-1,kind=window,quality=good,source=plant count=10,mean=0.12 1764460800000
// measurement = the record's metric (its kind when it has none); tags = device, source, kind,
// quality and the record's attributes, sorted by key; fields = its value and every other
// member (numbers as floats, text as strings); the timestamp is `ts` in the write's precision.
// The sink's worker converts a batch just before it posts it (the queue keeps records as JSON,
// so a sink can change kind across a reload without losing what waits).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "edge/connectors/payload.h"

namespace ganglion::edge {

/// The precision (TimePrecision, shared with line protocol ingest) a write URL's target (path
/// and query) asks for, spelt as its API spells it: `/write` (1.x) n, ns, u, ms, s;
/// `/api/v2/write` ns, us, ms, s; `/api/v3/write_lp` nanosecond ... second; any of those on
/// another path. Nanoseconds when there is none, as InfluxDB assumes. Otherwise nullopt, with
/// `error` naming the bad value: InfluxDB reads a spelling it does not know as nanoseconds,
/// and minutes or hours would merge readings of a series into one point. Config load.
std::optional<TimePrecision> precisionOfUrl(std::string_view target, std::string& error);

/// What one conversion did.
struct LineProtocolBatch {
  uint32_t lines = 0;       ///< records written as lines
  uint32_t skipped = 0;     ///< records with nothing to write (no number or text field) or not JSON
  std::string skip_reason;  ///< why the first skipped one was
};

/// Appends one line per record of `records_json` (JSON objects, comma-separated, as
/// RecordQueue::take hands them) to `out`, each ending in '\n'. Names and tag values
/// escape commas, spaces and '=' (a trailing backslash, which would escape the separator, is
/// dropped; a newline becomes a space); string fields escape '"' and '\', and a newline,
/// which line protocol cannot carry, is written as the two characters \n.
LineProtocolBatch appendLineProtocol(std::string_view records_json, TimePrecision precision,
                                     std::string& out);

}  // namespace ganglion::edge
