#include "base/bounded_json.h"

#include <boost/json/parser.hpp>

namespace ganglion {

namespace {

struct JsonShape {
  size_t containers = 0;  ///< objects and arrays
  size_t values = 1;  ///< at most this many values of any kind (each but a container's first follows a comma)
};

/// Counts the structure of JSON text (brackets and commas outside strings), stopping once a
/// limit is passed: a linear scan that allocates nothing.
JsonShape measureJson(std::string_view text, const JsonBounds& bounds) {
  JsonShape shape;
  bool in_string = false;
  for (size_t i = 0;
       i < text.size() && shape.containers <= bounds.max_containers && shape.values <= bounds.max_values;
       ++i) {
    const char ch = text[i];
    if (in_string) {
      if (ch == '\\')
        ++i;
      else if (ch == '"')
        in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '{' || ch == '[') {
      ++shape.containers;
      ++shape.values;
    } else if (ch == ',') {
      ++shape.values;
    }
  }
  return shape;
}

}  // namespace

BoundedJson parseBoundedJson(std::string_view text, const JsonBounds& bounds,
                             boost::json::storage_ptr storage) {
  BoundedJson out;
  // Every value takes at least one byte: text no longer than both limits cannot break either,
  // so the usual small body skips the scan.
  if (text.size() > std::min(bounds.max_containers, bounds.max_values)) {
    const JsonShape shape = measureJson(text, bounds);
    if (shape.containers > bounds.max_containers) {
      out.fault = JsonFault::kTooManyContainers;
      return out;
    }
    if (shape.values > bounds.max_values) {
      out.fault = JsonFault::kTooManyValues;
      return out;
    }
  }
  boost::system::error_code ec;
  boost::json::parse_options options;
  options.max_depth = bounds.max_depth;
  boost::json::parser parser(boost::json::storage_ptr(), options);
  parser.reset(std::move(storage));
  out.at = parser.write(text.data(), text.size(), ec);
  if (ec) {
    out.fault = ec == boost::json::error::too_deep ? JsonFault::kTooDeep : JsonFault::kSyntax;
    out.reason = ec.message();
    return out;
  }
  out.value = parser.release();
  return out;
}

}  // namespace ganglion
