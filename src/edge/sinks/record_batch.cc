#include "edge/sinks/record_batch.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "edge/connectors/mqtt_codec.h"

namespace ganglion::edge {

namespace json = boost::json;

bool forEachRecord(std::string_view records_json,
                   const std::function<void(std::string_view text, const json::object* record)>& each,
                   std::string& error) {
  json::parser parser;
  size_t at = 0;
  while (at < records_json.size()) {
    while (at < records_json.size() && (records_json[at] == ',' || records_json[at] == ' ')) ++at;
    if (at == records_json.size()) break;
    parser.reset();
    boost::system::error_code ec;
    const size_t used = parser.write_some(records_json.data() + at, records_json.size() - at, ec);
    if (ec) {
      error = fmt::format("it is not JSON ({})", ec.message());
      return false;
    }
    const std::string_view text = records_json.substr(at, used);
    at += used;
    const json::value v = parser.release();
    each(text, v.is_object() ? &v.get_object() : nullptr);
  }
  return true;
}

std::string topicOf(const TopicTemplate& topic, const json::object& record, std::string& error) {
  std::string out;
  for (const auto& piece : topic.pieces) {
    if (!piece.placeholder) {
      out += piece.text;
      continue;
    }
    if (const json::value* v = record.if_contains(piece.text); v && v->is_string()) {
      // A value fills one topic level: a '/' in it would add levels (another device's topics).
      if (v->get_string().find('/') != json::string::npos) {
        error = fmt::format("its {} '{}' holds a '/', which would add topic levels", piece.text,
                            std::string_view(v->get_string()).substr(0, 100));
        return {};
      }
      out += v->get_string();
    }
  }
  error = mqtt::checkTopicName(out);
  if (!error.empty()) {
    error = fmt::format("its topic '{}' is not valid: {}", out, error);
    return {};
  }
  return out;
}

}  // namespace ganglion::edge
