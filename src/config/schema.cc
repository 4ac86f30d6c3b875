#include "config/schema.h"

#include <fmt/format.h>

#include <boost/json.hpp>

namespace ganglion::config {

std::string tableCell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

boost::json::object headerOpsToJson(const HeaderOps& ops) {
  boost::json::object add;
  for (const auto& [k, v] : ops.add) add[k] = "<redacted>";
  boost::json::array remove;
  for (const auto& x : ops.remove) remove.emplace_back(x);
  return boost::json::object{{"add", std::move(add)}, {"remove", std::move(remove)}};
}

std::string fieldTypeText(FieldKind kind, uint64_t min, uint64_t max) {
  switch (kind) {
    case FieldKind::kString:
      return "string";
    case FieldKind::kBool:
      return "bool";
    case FieldKind::kInteger:
      return fmt::format("integer {}–{}", min, max);
    case FieldKind::kSize:
      return min ? fmt::format("size, ≥ {}", min) : std::string("size");
    case FieldKind::kDuration:
      if (min == 0) return "duration";
      return min % 1000 == 0 ? fmt::format("duration, raised to at least {}s", min / 1000)
                             : fmt::format("duration, raised to at least {}ms", min);
    case FieldKind::kHostPort:
      return "host:port";
    case FieldKind::kCustom:
      return "value";
  }
  return "value";
}

}  // namespace ganglion::config
