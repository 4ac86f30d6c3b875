// A sink's batch as its queue hands it (records' JSON texts, comma-separated), taken apart
// record by record, and MQTT topics filled from a record's JSON. The sink's worker.
#pragma once

#include <boost/json/object.hpp>
#include <functional>
#include <string>
#include <string_view>

#include "edge/edge_config.h"

namespace ganglion::edge {

/// Calls `each(text, object)` for the records of `records_json` in order (`object` is null for
/// one that is not a JSON object). Returns false, with `error`, at text that is not JSON: what
/// follows cannot be split into records either (queued records are the gateway's own JSON, on
/// disk behind a checksum, so that is a defect).
bool forEachRecord(std::string_view records_json,
                   const std::function<void(std::string_view text, const boost::json::object* record)>& each,
                   std::string& error);

/// `topic` with its placeholders filled from the record's members (a missing or non-text one
/// is empty). Empty, with `error`, when the result is not a valid topic name.
std::string topicOf(const TopicTemplate& topic, const boost::json::object& record, std::string& error);

}  // namespace ganglion::edge
