#include "edge/sinks/line_protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/parse_query.hpp>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "edge/sinks/record_batch.h"

namespace ganglion::edge {

namespace json = boost::json;

namespace {

/// A name or tag value: commas, spaces and (`equals`) '=' escaped; newlines become spaces;
/// trailing backslashes (which would escape the separator after them) are left out. A
/// backslash right before an escaped character is doubled: written alone, `a\ b` would read
/// as `a b` (InfluxDB 1.6 then stores the measurement `a\ b` exactly, a tag value with the
/// backslash doubled, and 2.x both exactly: never merged with `a b`).
void appendName(std::string& out, std::string_view s, bool equals) {
  while (!s.empty() && s.back() == '\\') s.remove_suffix(1);
  char previous = 0;
  for (char c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (c == ',' || c == ' ' || (equals && c == '=')) {
      if (previous == '\\') out.push_back('\\');
      out.push_back('\\');
    }
    out.push_back(c);
    previous = c;
  }
}

void appendStringField(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\\\n";
    } else if (c == '\r') {
      out += "\\\\r";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

/// A JSON scalar as text (tag values), or empty for null and containers.
std::string scalarText(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_int64()) return std::to_string(v.get_int64());
  if (v.is_uint64()) return std::to_string(v.get_uint64());
  if (v.is_double()) return fmt::format("{}", v.get_double());
  if (v.is_bool()) return v.get_bool() ? "true" : "false";
  return {};
}

bool isRecordMember(std::string_view key) {
  return key == "id" || key == "source" || key == "device" || key == "metric" || key == "ts" ||
         key == "kind" || key == "quality" || key == "attrs";
}

/// The line of one record, or the reason it has none.
std::string appendLine(std::string& out, const json::object& o, TimePrecision precision) {
  const size_t start = out.size();
  auto fail = [&](std::string why) {
    out.resize(start);
    return why;
  };
  const json::value* ts = o.if_contains("ts");
  if (!ts || !ts->is_int64()) return fail("it has no integer ts");
  int64_t stamp = ts->get_int64();
  const int64_t scale = precision == TimePrecision::kNanoseconds    ? 1'000'000
                        : precision == TimePrecision::kMicroseconds ? 1'000
                                                                    : 1;
  if (precision == TimePrecision::kSeconds) {
    stamp = stamp >= 0 ? stamp / 1000 : -((-stamp + 999) / 1000);  // floor
  } else if (stamp > std::numeric_limits<int64_t>::max() / scale ||
             stamp < std::numeric_limits<int64_t>::min() / scale) {
    return fail(fmt::format("its ts {} is out of line protocol's range", stamp));
  } else {
    stamp *= scale;
  }

  std::string measurement;
  if (const json::value* m = o.if_contains("metric"); m && m->is_string() && !m->get_string().empty())
    measurement = m->get_string();
  else if (const json::value* k = o.if_contains("kind"); k && k->is_string())
    measurement = k->get_string();
  if (!measurement.empty() && measurement.front() == '#')
    return fail(
        fmt::format("its measurement '{}' would read as a comment (a line starting with '#')", measurement));
  appendName(out, measurement, false);
  if (out.size() == start) return fail("it has neither metric nor kind");

  std::vector<std::pair<std::string, std::string>> tags;
  for (std::string_view key : {"device", "source", "kind", "quality"})
    if (const json::value* v = o.if_contains(key))
      if (std::string text = scalarText(*v); !text.empty()) tags.emplace_back(key, std::move(text));
  if (const json::value* attrs = o.if_contains("attrs"); attrs && attrs->is_object())
    for (const auto& [key, v] : attrs->get_object()) {
      if (key.empty() || key == "time" || isRecordMember(key)) continue;  // the record's own win
      if (std::string text = scalarText(v); !text.empty()) tags.emplace_back(key, std::move(text));
    }
  std::sort(tags.begin(), tags.end());
  std::string escaped_key, escaped_value;
  for (const auto& [key, value] : tags) {
    escaped_key.clear();
    escaped_value.clear();
    appendName(escaped_key, key, true);
    appendName(escaped_value, value, true);
    if (escaped_key.empty() || escaped_value.empty()) continue;  // nothing left to write
    out.push_back(',');
    out += escaped_key;
    out.push_back('=');
    out += escaped_value;
  }

  char sep = ' ';
  for (const auto& [key, v] : o) {
    if (isRecordMember(key) || key == "time") continue;
    const size_t before = out.size();
    out.push_back(sep);
    appendName(out, key, true);
    if (out.size() == before + 1) {
      out.resize(before);
      continue;
    }
    out.push_back('=');
    if (v.is_double())
      fmt::format_to(std::back_inserter(out), "{}", v.get_double());
    else if (v.is_int64())
      fmt::format_to(std::back_inserter(out), "{}", v.get_int64());
    else if (v.is_uint64())
      fmt::format_to(std::back_inserter(out), "{}", v.get_uint64());
    else if (v.is_bool())
      out += v.get_bool() ? "true" : "false";
    else if (v.is_string())
      appendStringField(out, v.get_string());
    else {
      out.resize(before);  // null (a number that was not finite) or a container: nothing to write
      continue;
    }
    sep = ',';
  }
  if (sep == ' ') return fail("it has no number or text to write as a field");
  fmt::format_to(std::back_inserter(out), " {}\n", stamp);
  return {};
}

}  // namespace

std::optional<TimePrecision> precisionOfUrl(std::string_view target, std::string& error) {
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  std::string p;  // the query's precision, decoded
  if (q != std::string_view::npos)
    if (auto params = boost::urls::parse_query(target.substr(q + 1)))
      for (const auto& param : *params)
        if (param.key.decode() == "precision") {
          p = param.value.decode();
          break;
        }
  // Each API spells microseconds its own way and reads a spelling it does not know as
  // nanoseconds (InfluxDB 1.6 stores precision=us times a thousand times too early).
  struct Spelling {
    std::string_view name;
    TimePrecision precision;
  };
  static constexpr Spelling kV1[] = {{"n", TimePrecision::kNanoseconds},
                                     {"ns", TimePrecision::kNanoseconds},
                                     {"u", TimePrecision::kMicroseconds},
                                     {"ms", TimePrecision::kMilliseconds},
                                     {"s", TimePrecision::kSeconds}};
  static constexpr Spelling kV2[] = {{"ns", TimePrecision::kNanoseconds},
                                     {"us", TimePrecision::kMicroseconds},
                                     {"ms", TimePrecision::kMilliseconds},
                                     {"s", TimePrecision::kSeconds}};
  static constexpr Spelling kV3[] = {{"nanosecond", TimePrecision::kNanoseconds},
                                     {"microsecond", TimePrecision::kMicroseconds},
                                     {"millisecond", TimePrecision::kMilliseconds},
                                     {"second", TimePrecision::kSeconds}};
  std::span<const Spelling> known;
  std::string_view api;
  if (path.ends_with("/api/v2/write")) {
    known = kV2;
    api = "/api/v2/write takes ns, us, ms or s";
  } else if (path.ends_with("/write")) {
    known = kV1;
    api = "/write (InfluxDB 1.x API) takes n, u, ms or s";
  } else if (path.ends_with("/api/v3/write_lp")) {
    known = kV3;
    api = "/api/v3/write_lp takes nanosecond, microsecond, millisecond or second";
  }
  if (p.empty()) return TimePrecision::kNanoseconds;
  if (known.empty()) {  // another path (a proxy): any spelling of the four
    for (std::span<const Spelling> list :
         {std::span<const Spelling>(kV1), std::span<const Spelling>(kV2), std::span<const Spelling>(kV3)})
      for (const Spelling& sp : list)
        if (sp.name == p) return sp.precision;
    error = fmt::format(
        "precision '{}' is not one of ns, us, ms, s (minutes and hours would merge readings into one point)",
        p);
    return std::nullopt;
  }
  for (const Spelling& sp : known)
    if (sp.name == p) return sp.precision;
  error = fmt::format(
      "precision '{}': {} (another spelling is read as nanoseconds; minutes and hours would merge "
      "readings into one point)",
      p, api);
  return std::nullopt;
}

LineProtocolBatch appendLineProtocol(std::string_view records_json, TimePrecision precision,
                                     std::string& out) {
  LineProtocolBatch result;
  auto skip = [&](std::string why) {
    if (result.skipped++ == 0) result.skip_reason = std::move(why);
  };
  std::string error;
  const bool whole = forEachRecord(
      records_json,
      [&](std::string_view, const json::object* record) {
        if (!record) return skip("it is not a JSON object");
        if (std::string why = appendLine(out, *record, precision); !why.empty()) return skip(std::move(why));
        ++result.lines;
      },
      error);
  if (!whole) skip(std::move(error));
  return result;
}

}  // namespace ganglion::edge
