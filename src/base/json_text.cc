#include "base/json_text.h"

#include <fmt/format.h>

#include "base/strings.h"

namespace ganglion {
namespace {

void write(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      out += "null";
      return;
    case boost::json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case boost::json::kind::int64:
      fmt::format_to(std::back_inserter(out), "{}", v.get_int64());
      return;
    case boost::json::kind::uint64:
      fmt::format_to(std::back_inserter(out), "{}", v.get_uint64());
      return;
    case boost::json::kind::double_:
      appendJsonNumber(out, v.get_double());
      return;
    case boost::json::kind::string:
      out.push_back('"');
      appendJsonEscaped(out, v.get_string());
      out.push_back('"');
      return;
    case boost::json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        write(out, item);
      }
      out.push_back(']');
      return;
    }
    case boost::json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        out.push_back('"');
        appendJsonEscaped(out, key);
        out += "\":";
        write(out, item);
      }
      out.push_back('}');
      return;
    }
  }
}

}  // namespace

std::string jsonText(const boost::json::value& v) {
  std::string out;
  write(out, v);
  return out;
}

}  // namespace ganglion
