// Config fields declared once. A section lists its fields (name, type, the member it fills,
// default as written, bounds, secret or not, a one-line doc); that one declaration drives
// reading (with unknown-field errors and the line of each bad value), the redacted JSON of
// GET /config, and the field table of docs/configuration.md (a unit test fails when the
// checked-in table differs from the generated one). Nested maps and cross-field checks stay
// in the section's reader, next to the readFields() call. Main thread (config load).
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.h"
#include "config/reader.h"

namespace ganglion::config {

/// kCustom: the field's own read and show functions (enumerations, lists, nested sections).
enum class FieldKind { kString, kBool, kInteger, kSize, kDuration, kHostPort, kCustom };

template <class T>
struct Field {
  using Member = std::variant<std::monostate, std::string T::*, bool T::*, uint64_t T::*, uint32_t T::*,
                              Millis T::*, HostPort T::*>;
  /// kCustom: reads the field's value (present in the YAML) into `out`, errors in `r`.
  using ReadFn = void (*)(Reader& r, const config::Node& value, T& out);
  /// kCustom: the field for GET /config; null leaves it out.
  using ShowFn = boost::json::value (*)(const T& in);
  std::string_view name;
  FieldKind kind;
  Member member = {};  ///< kCustom fields write `.member = {}`: GCC 12 ICEs (nothrow_spec_p) on some without
  std::string_view default_text;  ///< markdown, as the docs show it ("`30s`", "none")
  std::string_view doc;           ///< markdown, one paragraph
  /// Integers and sizes: bounds (errors). Durations: `min` is a floor in milliseconds that a
  /// shorter value is raised to.
  uint64_t min = 0;
  uint64_t max = std::numeric_limits<uint64_t>::max();
  bool required = false;
  bool secret = false;              ///< GET /config shows "<redacted>"
  std::string_view what = {};       ///< how errors name the value (default: the field name)
  std::string_view missing = {};    ///< the error when a required field is absent
  std::string_view type_text = {};  ///< the docs' type column, when not the kind's own words
  /// kCustom; null: the section's reader reads it itself (it needs more than the value, such
  /// as other sections), the schema only declares and shows it.
  ReadFn read = nullptr;
  ShowFn show = nullptr;  ///< kCustom; or another kind's GET /config form (a URL redacted)
};

/// A field the section's reader handles itself (a nested map), listed for unknown-key checks
/// and the docs table.
struct ExtraField {
  std::string_view name;
  std::string_view type_text;
  std::string_view default_text;
  std::string_view doc;
};

template <class T>
struct Schema {
  std::string_view section;  ///< how messages name it ("listener")
  std::vector<Field<T>> fields;
  std::vector<ExtraField> extra;  ///< nested maps its reader handles itself ("tls")
  /// The error when a nested section (readSection) is not a map; default "<section> must be a map".
  std::string_view not_a_map = {};
};

/// The field's type as the docs name it, with its bounds ("size, ≥ 1024", "integer 1–10000").
std::string fieldTypeText(FieldKind kind, uint64_t min, uint64_t max);

/// Reads every declared field present in `node` into `out`; an unknown key, a missing
/// required field or a bad value is an error in `r` with its line.
template <class T>
void readFields(const Schema<T>& schema, const config::Node& node, T& out, Reader& r) {
  std::vector<std::string_view> keys;
  for (const auto& f : schema.fields) keys.push_back(f.name);
  for (const auto& e : schema.extra) keys.push_back(e.name);
  r.checkKeys(node, keys, schema.section);
  for (const auto& f : schema.fields) {
    const config::Node v = node[std::string(f.name)];
    if (!v.IsDefined()) {
      if (f.required)
        r.fail(node, f.missing.empty() ? fmt::format("{} needs '{}'", schema.section, f.name)
                                       : std::string(f.missing));
      continue;
    }
    const std::string_view what = f.what.empty() ? f.name : f.what;
    switch (f.kind) {
      case FieldKind::kString:
        if (auto s = r.str(v, what)) out.*std::get<std::string T::*>(f.member) = *s;
        break;
      case FieldKind::kBool:
        if (auto b = r.boolean(v, what)) out.*std::get<bool T::*>(f.member) = *b;
        break;
      case FieldKind::kInteger:
        if (std::holds_alternative<uint32_t T::*>(f.member)) {
          if (auto i = r.integer<uint32_t>(v, what, f.min, f.max))
            out.*std::get<uint32_t T::*>(f.member) = *i;
        } else if (auto i = r.integer<uint64_t>(v, what, f.min, f.max)) {
          out.*std::get<uint64_t T::*>(f.member) = *i;
        }
        break;
      case FieldKind::kSize:
        if (auto b = r.bytes(v, what)) {
          if (*b < f.min)
            r.fail(v, fmt::format("{} must be at least {}", what, f.min));
          else if (*b > f.max)
            r.fail(v, fmt::format("{} must be at most {}", what, f.max));
          else
            out.*std::get<uint64_t T::*>(f.member) = *b;
        }
        break;
      case FieldKind::kDuration:
        if (auto d = r.duration(v, what))
          out.*std::get<Millis T::*>(f.member) = std::max(*d, Millis(static_cast<int64_t>(f.min)));
        break;
      case FieldKind::kHostPort:
        if (auto hp = r.hostPort(v, what)) out.*std::get<HostPort T::*>(f.member) = *hp;
        break;
      case FieldKind::kCustom:
        if (f.read) f.read(r, v, out);
        break;
    }
  }
}

/// A duration as GET /config shows every one: "<n>ms".
inline std::string durationText(Millis d) { return std::to_string(d.count()) + "ms"; }

/// The declared fields of `value` for GET /config, secrets as "<redacted>" (left out when
/// empty), durations as "<n>ms", addresses as host:port.
template <class T>
boost::json::object fieldsToJson(const Schema<T>& schema, const T& value) {
  boost::json::object o;
  for (const auto& f : schema.fields) {
    const std::string key(f.name);
    if (f.secret) {
      // A secret string left empty is not shown: "<redacted>" would say it is set.
      if (auto text = std::get_if<std::string T::*>(&f.member); !text || !(value.**text).empty())
        o[key] = "<redacted>";
      continue;
    }
    if (f.show) {  // kCustom's, or another kind's own way of showing it (a URL redacted)
      boost::json::value shown = f.show(value);
      if (!shown.is_null()) o[key] = std::move(shown);
      continue;
    }
    if (f.kind == FieldKind::kCustom) continue;
    std::visit(
        [&](auto member) {
          if constexpr (!std::is_same_v<decltype(member), std::monostate>) {
            const auto& v = value.*member;
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, Millis>)
              o[key] = durationText(v);
            else if constexpr (std::is_same_v<V, HostPort>)
              o[key] = v.text();
            else
              o[key] = v;
          }
        },
        f.member);
  }
  return o;
}

/// A nested map with its own schema, as a kCustom field of the section around it:
/// `.read = readSection<Upstream, Outlier, &Upstream::outlier, outlierSchema>,
///  .show = showSection<...same...>`. The nested schema's docs table is listed apart.
/// Whether `value` is a map, as a nested section must be; the section's error otherwise.
template <class S>
bool isSectionMap(Reader& r, const config::Node& value, const Schema<S>& schema) {
  if (value.IsMap()) return true;
  r.fail(value, schema.not_a_map.empty() ? fmt::format("{} must be a map", schema.section)
                                         : std::string(schema.not_a_map));
  return false;
}

template <class T, class S, S T::*Member, const Schema<S>& (*Nested)()>
void readSection(Reader& r, const config::Node& value, T& out) {
  if (isSectionMap(r, value, Nested())) readFields(Nested(), value, out.*Member, r);
}
template <class T, class S, S T::*Member, const Schema<S>& (*Nested)()>
boost::json::value showSection(const T& in) {
  return fieldsToJson(Nested(), in.*Member);
}
/// As readSection, for a section whose presence turns a feature on (`std::optional<S>`).
template <class T, class S, std::optional<S> T::*Member, const Schema<S>& (*Nested)()>
void readOptionalSection(Reader& r, const config::Node& value, T& out) {
  if (isSectionMap(r, value, Nested())) readFields(Nested(), value, (out.*Member).emplace(), r);
}
template <class T, class S, std::optional<S> T::*Member, const Schema<S>& (*Nested)()>
boost::json::value showOptionalSection(const T& in) {
  if (!(in.*Member)) return nullptr;
  return fieldsToJson(Nested(), *(in.*Member));
}

/// Each entry of a list by its schema, for GET /config.
template <class T>
boost::json::array listToJson(const Schema<T>& schema, const std::vector<T>& items) {
  boost::json::array out;
  for (const auto& x : items) out.push_back(fieldsToJson(schema, x));
  return out;
}

/// A list of strings for GET /config, as a kCustom field's show function:
/// `.show = &showStrings<Settings, &Settings::allow_origins>`.
template <class T, std::vector<std::string> T::*Member>
boost::json::value showStrings(const T& in) {
  boost::json::array out;
  for (const auto& x : in.*Member) out.emplace_back(x);
  return out;
}

/// Header operations for GET /config: the names added (values redacted: they often carry
/// credentials such as ${UPSTREAM_TOKEN}) and removed.
boost::json::object headerOpsToJson(const HeaderOps& ops);

/// `text` with its '|' escaped, for a markdown table cell.
std::string tableCell(std::string_view text);

/// The markdown rows of the section's field table (| Field | Type | Default | Meaning |),
/// for docs/configuration.md.
template <class T>
std::string docsTable(const Schema<T>& schema) {
  std::string out = "| Field | Type | Default | Meaning |\n|---|---|---|---|\n";
  for (const auto& f : schema.fields) {
    out += fmt::format("| `{}` | {} | {} | {} |\n", f.name,
                       f.type_text.empty() ? fieldTypeText(f.kind, f.min, f.max) : std::string(f.type_text),
                       f.required ? std::string_view("required") : f.default_text, tableCell(f.doc));
  }
  for (const auto& e : schema.extra)
    out += fmt::format("| `{}` | {} | {} | {} |\n", e.name, e.type_text, e.default_text, tableCell(e.doc));
  return out;
}

/// `routes[]` and `match` (config/route_schema.cc). The target (`upstream`, `llm`,
/// `welcome`) and `filters` are declared here and read by the route reader.
const Schema<RouteConfig>& routeSchema();
const Schema<RouteMatch>& matchSchema();
/// `state` (config/state_schema.cc; "sqlite or redis, not both" is checked by its reader).
const Schema<StateConfig>& stateSchema();
/// `keys[]` (config/key_schema.cc; uniqueness and "key or key_sha256" are checked by its reader).
const Schema<KeyConfig>& keySchema();

}  // namespace ganglion::config
