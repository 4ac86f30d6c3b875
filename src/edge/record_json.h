// The wire form of records (sinks, MQTT publishes, the admin API): one JSON object per record,
//   {"id":"plant-42","source":"plant","device":"pump-1","metric":"vibration","ts":1764460800123,
//    "kind":"reading","value":0.12,"quality":"good","attrs":{"site":"north"}}
// with a window's aggregates and an event's fields as members of their own. Pipeline's worker.
#pragma once

#include <string>

#include "edge/pipeline.h"

namespace ganglion::edge {

/// The record's id: a reading's `<connector>-<seq>`; an event's
/// `<origin>/<source>/<device>/<metric>/<ts>`, a window's the same with `-<seq>` (its oldest
/// reading's) after the ts; each part with '%' and '/' percent-encoded (the same window or
/// event produced again after a restart gets the same id).
void appendRecordId(std::string& out, const Record& r, const Pipeline& pipeline);

/// Appends `r` (of `batch`, in `pipeline`) as one JSON object. `id_suffix` is added to its id
/// (a rule's copy of a record: `<id>/<rule>`, so that a receiver keeps both).
void appendRecordJson(std::string& out, const Record& r, const Batch& batch, const Pipeline& pipeline,
                      std::string_view id_suffix = {});

}  // namespace ganglion::edge
