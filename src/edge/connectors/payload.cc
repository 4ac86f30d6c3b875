#include "edge/connectors/payload.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>

#include "base/bounded_json.h"
#include "base/strings.h"
#include "edge/expr/expr.h"

namespace ganglion::edge {

namespace json = boost::json;

std::optional<PayloadFormat> payloadFormatFromName(std::string_view name) {
  if (name == "json") return PayloadFormat::kJson;
  if (name == "number") return PayloadFormat::kNumber;
  if (name == "senml") return PayloadFormat::kSenml;
  if (name == "line_protocol") return PayloadFormat::kLineProtocol;
  return std::nullopt;
}

std::string_view payloadFormatName(PayloadFormat f) {
  switch (f) {
    case PayloadFormat::kJson:
      return "json";
    case PayloadFormat::kNumber:
      return "number";
    case PayloadFormat::kSenml:
      return "senml";
    case PayloadFormat::kLineProtocol:
      return "line_protocol";
  }
  return "json";
}

namespace {

/// A name a record may carry: not empty, bounded, UTF-8 without control characters.
bool goodName(std::string_view s) {
  return !s.empty() && s.size() <= kMaxNameBytes && isValidUtf8(s) && !hasControlOrNoncharacter(s);
}

/// Checks a reading's names and time and hands it on, or counts why not. Runs twice per
/// payload: first to find errors that refuse it whole (emit false), then to emit.
class Emitter {
 public:
  Emitter(const PayloadContext& ctx, const ReadingSink& sink, DecodeReport& report)
      : ctx_(ctx), sink_(sink), report_(report) {}

  void setEmitting() {
    emit_ = true;
    count_ = 0;
  }
  /// Whether the payload holds too many readings (an error for the whole payload).
  bool tooMany() const { return count_ > ctx_.max_readings; }
  size_t count() const { return count_; }

  void reading(std::string_view device, std::string_view metric, int64_t ts, double value, Quality q,
               std::string_view attrs) {
    if (!std::isfinite(value)) return reject("a value that is not a finite number");
    if (!goodName(device))
      return reject(device.empty() ? "no device (the topic or URL names none)"
                                   : "a device name that is not allowed");
    if (!goodName(metric)) return reject(metric.empty() ? "no metric" : "a metric name that is not allowed");
    if (ts > ctx_.now_ms + ctx_.max_future_ms) return reject("a time too far in the future");
    if (ts < ctx_.now_ms - ctx_.max_past_ms) return reject("a time too far in the past");
    ++count_;
    if (!emit_ || tooMany()) return;
    ++report_.readings;
    sink_(DecodedReading{device, metric, ts, value, q, attrs});
  }
  void reject(std::string reason) {
    if (emit_) report_.reject(std::move(reason));
  }
  const PayloadContext& ctx() const { return ctx_; }

 private:
  const PayloadContext& ctx_;
  const ReadingSink& sink_;
  DecodeReport& report_;
  bool emit_ = false;
  size_t count_ = 0;
};

/// Milliseconds from a JSON time in epoch milliseconds; nullopt when it is not a number or is
/// out of range.
std::optional<int64_t> millisFrom(double d) {
  if (!std::isfinite(d) || d > 9.0e15 || d < -9.0e15) return std::nullopt;  // ±285,000 years
  return static_cast<int64_t>(std::floor(d));
}

std::optional<double> numberOf(const json::value& v) {
  if (v.is_double()) return v.get_double();
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_bool()) return v.get_bool() ? 1.0 : 0.0;
  return std::nullopt;
}

void addAttr(std::string& attrs, size_t& count, std::string_view key, const json::value& v) {
  if (count >= kMaxAttrs || key.empty() || key.size() > kMaxAttrKey ||
      key.find('\0') != std::string_view::npos)
    return;
  if (v.is_string()) {
    const std::string_view s = v.get_string();
    if (s.size() > kMaxAttrValue || s.find('\0') != std::string_view::npos) return;
    expr::appendAttr(attrs, key, s, false);
  } else if (auto d = numberOf(v); d && std::isfinite(*d)) {
    expr::appendAttr(attrs, key, fmt::format("{}", *d), true);
  } else {
    return;  // objects, arrays, null: not attributes
  }
  ++count;
}

std::optional<Quality> qualityFrom(std::string_view s) {
  if (s == "good") return Quality::kGood;
  if (s == "uncertain") return Quality::kUncertain;
  if (s == "bad") return Quality::kBad;
  return std::nullopt;
}

Result<json::value> parseJson(std::string_view payload) {
  JsonBounds bounds;
  bounds.max_depth = 16;
  bounds.max_containers = 100'000;
  bounds.max_values = 1'000'000;
  bounds.refuse_duplicate_keys = true;  // {"value": 1, "value": 2} means nothing certain
  BoundedJson parsed = parseBoundedJson(payload, bounds, {});
  switch (parsed.fault) {
    case JsonFault::kNone:
      return std::move(parsed.value);
    case JsonFault::kTooDeep:
      return Error("the JSON nests too deep", "bad_payload");
    case JsonFault::kTooManyContainers:
    case JsonFault::kTooManyValues:
      return Error("the JSON holds too many values", "bad_payload");
    case JsonFault::kSyntax:
      return Error(fmt::format("not JSON at byte {}: {}", parsed.at, parsed.reason), "bad_payload");
    case JsonFault::kDuplicateKey:
      return Error(fmt::format("the JSON is ambiguous: {}", parsed.reason), "bad_payload");
  }
  return Error("not JSON", "bad_payload");
}

// ---- json
void jsonEntry(const json::value& v, Emitter& out, std::string& attrs) {
  const PayloadContext& ctx = out.ctx();
  if (auto d = numberOf(v)) return out.reading(ctx.device, ctx.metric, ctx.now_ms, *d, Quality::kGood, {});
  if (!v.is_object()) return out.reject("an entry that is neither a number nor an object");
  const json::object& o = v.get_object();
  const json::value* value = o.if_contains("value");
  if (!value) return out.reject("an object without 'value'");
  auto number = numberOf(*value);
  if (!number) return out.reject("a 'value' that is not a number");
  int64_t ts = ctx.now_ms;
  if (const json::value* t = o.if_contains("ts"); t && !t->is_null()) {
    auto d = numberOf(*t);
    auto ms = d && !t->is_bool() ? millisFrom(*d) : std::nullopt;
    if (!ms) return out.reject("a 'ts' that is not epoch milliseconds");
    ts = *ms;
  }
  Quality q = Quality::kGood;
  if (const json::value* qv = o.if_contains("quality"); qv && !qv->is_null()) {
    auto parsed = qv->is_string() ? qualityFrom(qv->get_string()) : std::nullopt;
    if (!parsed) return out.reject("a 'quality' other than good, uncertain or bad");
    q = *parsed;
  }
  attrs.clear();
  size_t n = 0;
  for (const auto& [key, member] : o) {
    if (key == "value" || key == "ts" || key == "quality") continue;
    addAttr(attrs, n, key, member);
  }
  out.reading(ctx.device, ctx.metric, ts, *number, q, attrs);
}

Result<void> decodeJson(std::string_view payload, Emitter& out) {
  auto parsed = parseJson(payload);
  if (!parsed) return parsed.error();
  std::string attrs;
  for (int pass = 0; pass < 2; ++pass) {
    if (parsed->is_array()) {
      const json::array& a = parsed->get_array();
      if (a.empty()) return Error("an empty array holds no readings", "bad_payload");
      for (const json::value& v : a) jsonEntry(v, out, attrs);
    } else {
      if (!parsed->is_object() && !numberOf(*parsed))
        return Error("JSON payloads are an object with 'value', a number, or an array of those",
                     "bad_payload");
      jsonEntry(*parsed, out, attrs);
    }
    if (out.tooMany())
      return Error(fmt::format("more than {} readings in one payload", out.ctx().max_readings),
                   "bad_payload");
    if (pass == 0) out.setEmitting();
  }
  return {};
}

// ---- number
Result<void> decodeNumber(std::string_view payload, Emitter& out) {
  std::string_view s = payload;
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  const auto d = parseDouble(s);
  if (!d || !std::isfinite(*d)) return Error("the payload is not a number", "bad_payload");
  out.setEmitting();
  const PayloadContext& ctx = out.ctx();
  out.reading(ctx.device, ctx.metric, ctx.now_ms, *d, Quality::kGood, {});
  return {};
}

// ---- SenML (RFC 8428, JSON representation)
std::string trimSeparators(std::string_view s) {
  while (!s.empty() && (s.back() == ':' || s.back() == '/' || s.back() == '.' || s.back() == '-'))
    s.remove_suffix(1);
  return std::string(s);
}

Result<void> decodeSenml(std::string_view payload, Emitter& out) {
  auto parsed = parseJson(payload);
  if (!parsed) return parsed.error();
  if (!parsed->is_array()) return Error("a SenML pack is a JSON array of records", "bad_payload");
  const json::array& pack = parsed->get_array();
  if (pack.empty()) return Error("an empty SenML pack holds no readings", "bad_payload");
  const PayloadContext& ctx = out.ctx();
  std::string attrs, device;
  for (int pass = 0; pass < 2; ++pass) {
    std::string base_name, base_unit;
    double base_time = 0, base_value = 0;
    for (const json::value& entry : pack) {
      if (!entry.is_object()) return Error("a SenML record is a JSON object", "bad_payload");
      const json::object& r = entry.get_object();
      // Base fields apply to this record and the ones after it (RFC 8428 section 4.1).
      if (const json::value* v = r.if_contains("bn")) {
        if (!v->is_string()) return Error("SenML 'bn' must be a string", "bad_payload");
        base_name = std::string(v->get_string());
      }
      if (const json::value* v = r.if_contains("bt")) {
        if (!v->is_number()) return Error("SenML 'bt' must be a number", "bad_payload");
        base_time = *numberOf(*v);
      }
      if (const json::value* v = r.if_contains("bu")) {
        if (!v->is_string()) return Error("SenML 'bu' must be a string", "bad_payload");
        base_unit = std::string(v->get_string());
      }
      if (const json::value* v = r.if_contains("bv")) {
        if (!v->is_number()) return Error("SenML 'bv' must be a number", "bad_payload");
        base_value = *numberOf(*v);
      }
      if (const json::value* v = r.if_contains("bver")) {
        // RFC 8428 4.4: a pack of a version above the reader's (10) must not be used.
        if (!v->is_number()) return Error("SenML 'bver' must be a number", "bad_payload");
        if (*numberOf(*v) > 10) return Error("SenML version above 10 (bver)", "bad_payload");
      }
      // Names ending in '_' are fields a reader must understand (RFC 8428 4.4): refused.
      for (const auto& [key, member] : r) {
        (void)member;
        if (!key.empty() && key.back() == '_')
          return Error(fmt::format("SenML field '{}' must be understood, and is not", std::string_view(key)),
                       "bad_payload");
      }
      std::string_view name;
      if (const json::value* v = r.if_contains("n")) {
        if (!v->is_string()) return Error("SenML 'n' must be a string", "bad_payload");
        name = v->get_string();
      }
      const json::value* v = r.if_contains("v");
      const json::value* vb = r.if_contains("vb");
      // RFC 8428 4.2: a record holds one value (a sum may come with it).
      if ((v != nullptr) + (vb != nullptr) + r.contains("vs") + r.contains("vd") > 1) {
        out.reject("a SenML record with more than one value (v, vs, vb, vd)");
        continue;
      }
      double value;
      if (v) {
        if (!v->is_number()) return Error("SenML 'v' must be a number", "bad_payload");
        value = base_value + *numberOf(*v);
      } else if (vb) {
        if (!vb->is_bool()) return Error("SenML 'vb' must be a boolean", "bad_payload");
        value = vb->get_bool() ? 1 : 0;
      } else {
        // A record with only base fields, or a string, data or sum value: no reading.
        if (r.contains("vs") || r.contains("vd") || r.contains("s"))
          out.reject("a SenML record without a number value");
        continue;
      }
      double t = base_time;
      if (const json::value* tv = r.if_contains("t")) {
        if (!tv->is_number()) return Error("SenML 't' must be a number", "bad_payload");
        t += *numberOf(*tv);
      }
      // Times below 2^28 are relative to now (seconds); 0 is now.
      const double ms = t < 268435456.0 ? static_cast<double>(ctx.now_ms) + t * 1000.0 : t * 1000.0;
      auto ts = millisFrom(std::round(ms));
      if (!ts) {
        out.reject("a SenML time out of range");
        continue;
      }
      attrs.clear();
      std::string_view unit = base_unit;
      if (const json::value* u = r.if_contains("u")) {
        if (!u->is_string()) return Error("SenML 'u' must be a string", "bad_payload");
        unit = u->get_string();
      }
      if (!unit.empty() && unit.size() <= kMaxAttrValue && unit.find('\0') == std::string_view::npos)
        expr::appendAttr(attrs, "unit", unit, false);
      // The device: its base name when the connector allows, else where the pack arrived
      // (nowhere named: refused as without a device, never the base name).
      if (ctx.payload_names_device && !base_name.empty())
        device = trimSeparators(base_name);
      else
        device = std::string(ctx.device);
      std::string_view metric = name.empty() ? ctx.metric : name;
      if (base_name.empty() && name.empty()) {
        out.reject("a SenML record without a name");
        continue;
      }
      out.reading(device, metric, *ts, value, Quality::kGood, attrs);
    }
    if (out.tooMany())
      return Error(fmt::format("more than {} readings in one payload", ctx.max_readings), "bad_payload");
    if (pass == 0) out.setEmitting();
  }
  return {};
}

// ---- InfluxDB line protocol
struct LineCursor {
  std::string_view s;
  size_t at = 0;
  bool done() const { return at >= s.size(); }
  char peek() const { return s[at]; }
};

/// Reads an escaped token up to one of `stops` (backslash escapes the next byte), unescaped
/// into `out`. Returns false on a newline or end inside it when `need_stop`.
bool readToken(LineCursor& c, std::string_view stops, std::string& out) {
  out.clear();
  while (!c.done()) {
    const char ch = c.peek();
    if (ch == '\\' && c.at + 1 < c.s.size() && c.s[c.at + 1] != '\n') {
      out.push_back(c.s[c.at + 1]);
      c.at += 2;
      continue;
    }
    if (stops.find(ch) != std::string_view::npos || ch == '\n') return true;
    out.push_back(ch);
    ++c.at;
  }
  return true;
}

int64_t toMillis(int64_t t, TimePrecision p) {
  auto floorDiv = [](int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); };
  switch (p) {
    case TimePrecision::kNanoseconds:
      return floorDiv(t, 1'000'000);
    case TimePrecision::kMicroseconds:
      return floorDiv(t, 1'000);
    case TimePrecision::kMilliseconds:
      return t;
    case TimePrecision::kSeconds:
      return t > INT64_MAX / 1000 ? INT64_MAX : t < INT64_MIN / 1000 ? INT64_MIN : t * 1000;
  }
  return t;
}

struct LineField {
  std::string key;
  double value = 0;
  bool numeric = false;
};

/// What decodeLine reuses from line to line.
struct LineScratch {
  std::string attrs;
  std::vector<LineField> fields;
  std::vector<std::string> tags;  // the tags' keys
  std::vector<std::string_view> keys;
};

/// A key `keys` holds twice, or empty. Sorts `keys`: n log n for a line of many fields.
std::string_view repeatedKey(std::vector<std::string_view>& keys) {
  std::sort(keys.begin(), keys.end());
  const auto twice = std::adjacent_find(keys.begin(), keys.end());
  return twice == keys.end() ? std::string_view() : *twice;
}

/// One line: `measurement[,tag=v...] field=v[,field=v...] [timestamp]`. Returns an error for
/// bad syntax (the payload is refused whole).
Result<void> decodeLine(std::string_view line, size_t line_no, Emitter& out, LineScratch& scratch) {
  auto bad = [&](std::string_view why) {
    return Error(fmt::format("line {}: {}", line_no, why), "bad_payload");
  };
  const PayloadContext& ctx = out.ctx();
  LineCursor c{line};
  std::string measurement, key, value, device(ctx.device);
  readToken(c, ", ", measurement);
  if (measurement.empty()) return bad("no measurement");
  std::string& attrs = scratch.attrs;
  std::vector<LineField>& fields = scratch.fields;
  attrs.clear();
  scratch.tags.clear();
  size_t attr_count = 0;
  while (!c.done() && c.peek() == ',') {
    ++c.at;
    readToken(c, "=, ", key);
    if (c.done() || c.peek() != '=' || key.empty()) return bad("a tag without '='");
    ++c.at;
    readToken(c, ", ", value);
    if (value.empty()) return bad(fmt::format("tag '{}' has no value", key));
    scratch.tags.push_back(key);
    if (key == "device" && ctx.payload_names_device) {
      device = value;
    } else if (attr_count < kMaxAttrs && key.size() <= kMaxAttrKey && value.size() <= kMaxAttrValue &&
               key.find('\0') == std::string::npos && value.find('\0') == std::string::npos) {
      expr::appendAttr(attrs, key, value, false);
      ++attr_count;
    }
  }
  if (c.done() || c.peek() != ' ') return bad("no fields after the measurement");
  // A key given twice is refused, as in JSON: which of the two was meant is not known.
  scratch.keys.assign(scratch.tags.begin(), scratch.tags.end());
  if (const auto twice = repeatedKey(scratch.keys); !twice.empty())
    return bad(fmt::format("tag '{}' is given twice", printableText(twice, 64)));
  while (!c.done() && c.peek() == ' ') ++c.at;
  fields.clear();
  while (true) {
    readToken(c, "=, ", key);
    if (c.done() || c.peek() != '=' || key.empty()) return bad("a field without '='");
    ++c.at;
    LineField f{key};
    if (!c.done() && c.peek() == '"') {  // a string field: not a reading
      ++c.at;
      bool closed = false;
      while (!c.done()) {
        if (c.peek() == '\\' && c.at + 1 < c.s.size()) {
          c.at += 2;
          continue;
        }
        if (c.peek() == '"') {
          closed = true;
          ++c.at;
          break;
        }
        ++c.at;
      }
      if (!closed) return bad(fmt::format("field '{}': string not closed", key));
    } else {
      const size_t start = c.at;
      while (!c.done() && c.peek() != ',' && c.peek() != ' ') ++c.at;
      std::string_view text = line.substr(start, c.at - start);
      if (text.empty()) return bad(fmt::format("field '{}' has no value", key));
      if (text == "t" || text == "T" || text == "true" || text == "True" || text == "TRUE") {
        f.value = 1, f.numeric = true;
      } else if (text == "f" || text == "F" || text == "false" || text == "False" || text == "FALSE") {
        f.value = 0, f.numeric = true;
      } else {
        const char suffix = text.back();
        if (suffix == 'i' || suffix == 'u') {
          // Integers as InfluxDB takes them: i signed 64-bit, u unsigned 64-bit, digits only.
          text.remove_suffix(1);
          const char* end = text.data() + text.size();
          bool fits;
          if (suffix == 'i') {
            int64_t n = 0;
            auto [ptr, ec] = std::from_chars(text.data(), end, n);
            fits = !text.empty() && ec == std::errc() && ptr == end;
            f.value = static_cast<double>(n);
          } else {
            uint64_t n = 0;
            auto [ptr, ec] = std::from_chars(text.data(), end, n);
            fits = !text.empty() && ec == std::errc() && ptr == end;
            f.value = static_cast<double>(n);
          }
          if (!fits)
            return bad(
                fmt::format("field '{}' is not a{} 64-bit integer", key, suffix == 'u' ? "n unsigned" : ""));
        } else {
          const auto d = parseDouble(text);
          if (!d) return bad(fmt::format("field '{}' is not a number", key));
          f.value = *d;
        }
        f.numeric = true;
      }
    }
    fields.push_back(std::move(f));
    if (!c.done() && c.peek() == ',') {
      ++c.at;
      continue;
    }
    break;
  }
  scratch.keys.clear();
  for (const LineField& f : fields) scratch.keys.push_back(f.key);
  if (const auto twice = repeatedKey(scratch.keys); !twice.empty())
    return bad(fmt::format("field '{}' is given twice", printableText(twice, 64)));
  int64_t ts = ctx.now_ms;
  while (!c.done() && c.peek() == ' ') ++c.at;
  if (!c.done()) {
    const std::string_view text = trim(line.substr(c.at));
    int64_t t = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), t);
    if (ec == std::errc::result_out_of_range && ptr == text.data() + text.size())
      return bad("the timestamp is out of range (a signed 64-bit integer)");
    if (ec != std::errc() || ptr != text.data() + text.size()) return bad("the timestamp is not an integer");
    ts = toMillis(t, ctx.line_precision);
  }
  std::string metric;
  for (const LineField& f : fields) {
    if (!f.numeric) {
      out.reject("a string field");
      continue;
    }
    metric = f.key == "value" ? measurement : measurement + "." + f.key;
    out.reading(device, metric, ts, f.value, Quality::kGood, attrs);
  }
  return {};
}

Result<void> decodeLineProtocol(std::string_view payload, Emitter& out) {
  LineScratch scratch;
  size_t lines = 0;
  for (int pass = 0; pass < 2; ++pass) {
    size_t at = 0, line_no = 0;
    while (at <= payload.size()) {
      size_t end = payload.find('\n', at);
      if (end == std::string_view::npos) end = payload.size();
      std::string_view line = payload.substr(at, end - at);
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      const std::string_view content = trim(line);
      if (!content.empty() && content.front() != '#') {
        if (pass == 0) ++lines;
        // Leading whitespace is not part of the measurement.
        auto r = decodeLine(line.substr(line.find_first_not_of(" \t")), line_no, out, scratch);
        if (!r.ok()) return r;
        if (out.tooMany())
          return Error(fmt::format("more than {} readings in one payload", out.ctx().max_readings),
                       "bad_payload");
      }
      if (end == payload.size()) break;
      at = end + 1;
    }
    if (lines == 0) return Error("no lines in the payload", "bad_payload");
    if (pass == 0) out.setEmitting();
  }
  return {};
}

}  // namespace

Result<void> decodePayload(PayloadFormat format, std::string_view payload, const PayloadContext& ctx,
                           const ReadingSink& sink, DecodeReport& report) {
  Emitter out(ctx, sink, report);
  switch (format) {
    case PayloadFormat::kJson:
      return decodeJson(payload, out);
    case PayloadFormat::kNumber:
      return decodeNumber(payload, out);
    case PayloadFormat::kSenml:
      return decodeSenml(payload, out);
    case PayloadFormat::kLineProtocol:
      return decodeLineProtocol(payload, out);
  }
  return Error("unknown payload format");
}

std::string payloadRefusal(PayloadFormat format, const Error& error) {
  return fmt::format("{} payload refused: {}", payloadFormatName(format), error.message);
}

std::string noReadingsRefusal(const DecodeReport& report) {
  return report.rejected
             ? fmt::format("no reading was accepted: {} ({} refused)", report.first_reason, report.rejected)
             : std::string("the payload holds no readings");
}

std::optional<PayloadFormat> formatOfContentType(std::string_view content_type, PayloadFormat fallback) {
  std::string_view type = trim(content_type.substr(0, content_type.find(';')));
  if (type.empty() || iequals(type, "application/octet-stream")) return fallback;
  if (iequals(type, "application/senml+json")) return PayloadFormat::kSenml;
  if (iequals(type, "application/json") ||
      (type.size() > 5 && iequals(type.substr(type.size() - 5), "+json")))
    return PayloadFormat::kJson;
  if (iequals(type, "text/plain"))
    return fallback == PayloadFormat::kNumber ? fallback : PayloadFormat::kLineProtocol;
  return std::nullopt;
}

}  // namespace ganglion::edge
