// `rules:` (docs/configuration.md "rules", docs/edge.md "Rules"): conditions compiled at load
// (errors with line and column), topic templates split once, references to pipelines,
// connectors and sinks checked. Main thread (config load) or the blocking pool.
#include <fmt/format.h>

#include <boost/json.hpp>

#include "edge/edge_config.h"

namespace ganglion::edge {

namespace json = boost::json;
using config::FieldKind;
using config::Reader;
using config::Schema;

namespace {

constexpr std::string_view kActionKinds = "publish, forward";
constexpr std::string_view kPlannedActions[] = {"summarize", "webhook", "write"};
constexpr std::string_view kPlaceholders =
    "device, metric, source, kind, rule, pipeline, or a text field (detector, verdict)";

/// Whether `name` may stand in a topic template: a record's own text, the rule's or the
/// pipeline's name, or a text field records carry.
bool knownPlaceholder(std::string_view name) {
  for (std::string_view builtin : {"device", "metric", "source", "kind", "rule", "pipeline"})
    if (name == builtin) return true;
  const auto names = edgeFieldNames();
  const FieldId id = names->find(name);
  return id != FieldNames::kNoField && names->type(id) == FieldNames::Type::kText && name != "attrs";
}

void readTopicTemplate(Reader& r, const config::Node& v, RulePublish& p) {
  auto s = r.str(v, "topic");
  if (!s) return;
  TopicTemplate t;
  t.text = *s;
  std::string probe;  // the template with each placeholder as one plain level, for the topic checks
  std::string_view rest = *s;
  while (!rest.empty()) {
    const size_t open = rest.find('{');
    const size_t close = rest.find('}');
    if (close < open) return r.fail(v, fmt::format("topic '{}': a '}}' without its '{{'", *s));
    if (open == std::string_view::npos) {
      t.pieces.push_back({false, std::string(rest)});
      probe += rest;
      break;
    }
    if (open) {
      t.pieces.push_back({false, std::string(rest.substr(0, open))});
      probe += rest.substr(0, open);
    }
    if (close == std::string_view::npos)
      return r.fail(v, fmt::format("topic '{}': a '{{' without its '}}'", *s));
    const std::string_view name = rest.substr(open + 1, close - open - 1);
    if (!knownPlaceholder(name))
      return r.fail(
          v, fmt::format("topic '{}': unknown placeholder '{{{}}}' (known: {})", *s, name, kPlaceholders));
    t.pieces.push_back({true, std::string(name)});
    probe += "x";
    rest.remove_prefix(close + 1);
  }
  if (std::string why = mqtt::checkTopicName(probe); !why.empty())
    return r.fail(v, fmt::format("topic '{}': {}", *s, why));
  p.topic = std::move(t);
}

void readPer(Reader& r, const config::Node& v, RuleConfig& rule) {
  auto s = r.str(v, "per");
  if (!s) return;
  if (*s != "device" && *s != "series" && *s != "rule")
    return r.fail(v, fmt::format("per must be device, series or rule, got '{}'", *s));
  rule.per = *s;
}

std::shared_ptr<const expr::Program> compileCondition(Reader& r, const config::Node& v,
                                                      const RuleConfig& rule, std::string_view field,
                                                      const std::string& text) {
  const auto names = edgeFieldNames();
  expr::Scope scope;
  scope.names = names.get();
  scope.all_fields = true;
  scope.attrs_field = names->find("attrs");
  auto program = expr::compile(text, scope, true);
  if (!program) {
    r.fail(v, fmt::format("rule '{}': {}: {}", rule.name, field, program.error().message));
    return nullptr;
  }
  return std::make_shared<const expr::Program>(std::move(*program));
}

void readActions(Reader& r, const config::Node& v, RuleConfig& rule) {
  if (!v.IsSequence())
    return r.fail(v, "actions is a list: [ { publish: {...} }, { forward: { to: sink } } ]");
  r.forEach(v, "actions", [&](const config::Node& n) {
    if (!n.IsMap() || n.size() != 1)
      return r.fail(n, fmt::format("an action is a map with one key ({})", kActionKinds));
    const std::string kind = n.begin()->first.Scalar();
    const config::Node body = n.begin()->second;
    if (kind == "publish") {
      if (!config::isSectionMap(r, body, rulePublishSchema())) return;
      RulePublish p;
      readFields(rulePublishSchema(), body, p, r);
      rule.actions.emplace_back(std::move(p));
      return;
    }
    if (kind == "forward") {
      RuleForward f;
      if (body.IsScalar()) {  // forward: uplink
        if (auto s = r.str(body, "forward")) f.to = *s;
      } else if (body.IsMap()) {
        r.checkKeys(body, {"to"}, "forward");
        if (auto s = r.str(body["to"], "forward.to")) f.to = *s;
      } else {
        return r.fail(body, "forward is { to: <sink> }");
      }
      rule.actions.emplace_back(std::move(f));
      return;
    }
    for (std::string_view planned : kPlannedActions)
      if (kind == planned)
        return r.fail(
            n.begin()->first,
            fmt::format("action '{}' is not built yet (built: {}; docs/edge.md says what comes next)", kind,
                        kActionKinds));
    r.fail(n.begin()->first, fmt::format("unknown action '{}' (built: {})", kind, kActionKinds));
  });
}

json::value showActions(const RuleConfig& rule) {
  json::array a;
  for (const auto& action : rule.actions) {
    json::object o;
    if (const auto* p = std::get_if<RulePublish>(&action))
      o["publish"] = config::fieldsToJson(rulePublishSchema(), *p);
    else if (const auto* f = std::get_if<RuleForward>(&action))
      o["forward"] = json::object{{"to", f->to}};
    a.push_back(std::move(o));
  }
  return a;
}

}  // namespace

const Schema<RulePublish>& rulePublishSchema() {
  using P = RulePublish;
  static const Schema<RulePublish> schema{
      "publish",
      {
          {.name = "connector",
           .kind = FieldKind::kString,
           .member = &P::connector,
           .default_text = "—",
           .doc = "An `mqtt` connector: the message goes to its broker.",
           .required = true,
           .missing = "publish needs a 'connector' (an mqtt connector)"},
          {.name = "topic",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "The topic, with placeholders filled from the record: `{device}`, `{metric}`, `{source}`, "
                  "`{kind}`, `{rule}`, `{pipeline}`, or a text field such as `{detector}`. A record whose "
                  "values would make the topic invalid (a `+` or `#` in a device name) is not published "
                  "(counted as a failed action).",
           .required = true,
           .missing = "publish needs a 'topic'",
           .type_text = "template",
           .read = readTopicTemplate,
           .show = [](const P& p) -> json::value { return json::string(p.topic.text); }},
          {.name = "qos",
           .kind = FieldKind::kInteger,
           .member = &P::qos,
           .default_text = "`1`",
           .doc = "0, 1 or 2. QoS 1 and 2 messages are kept until the broker acknowledges them, and sent "
                  "again after a lost connection (at most 1,000 wait; past that the oldest is dropped and "
                  "counted).",
           .max = 2},
          {.name = "retain",
           .kind = FieldKind::kBool,
           .member = &P::retain,
           .default_text = "`false`",
           .doc = "The broker keeps the last message of the topic for new subscribers."},
      },
      {}};
  return schema;
}

const Schema<RuleConfig>& ruleSchema() {
  using R = RuleConfig;
  static const Schema<RuleConfig> schema{
      "rule",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &R::name,
           .default_text = "—",
           .doc = "Names the rule in GET /edge, metrics and the records it sends (`\"rule\"`).",
           .required = true,
           .missing = "a rule needs a 'name'"},
          {.name = "from",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "every pipeline",
           .doc = "The pipelines whose output records (readings, windows, events) the rule sees.",
           .type_text = "list of names",
           .read = [](Reader& r, const config::Node& v, R& rule) { rule.from = readNames(r, v, "from"); },
           .show = [](const R& rule) { return namesToJson(rule.from); }},
          {.name = "when",
           .kind = FieldKind::kString,
           .member = &R::when,
           .default_text = "—",
           .doc = "A condition ([expression](edge.md#expressions)) on the record: "
                  "`\"event.detector == 'vib' and event.score > 6\"`.",
           .required = true,
           .missing = "a rule needs 'when': the condition that fires it"},
          {.name = "clear_when",
           .kind = FieldKind::kString,
           .member = &R::clear_when,
           .default_text = "none",
           .doc = "Hysteresis: once fired, the rule stays raised for its key (no more firings) until a "
                  "record makes this true (`\"value < 60\"` after `when: \"value > 80\"`).",
           .what = "clear_when"},
          {.name = "hold_off",
           .kind = FieldKind::kDuration,
           .member = &R::hold_off,
           .default_text = "`0s`",
           .doc = "After firing, matches for the same key within this much record time do not fire "
                  "(counted as suppressed)."},
          {.name = "per",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`device`",
           .doc = "What hold-off and hysteresis are kept for: `device` (source and device), `series` "
                  "(source, device and metric) or `rule` (one state for the whole rule).",
           .type_text = "name",
           .read = readPer,
           .show = [](const R& rule) -> json::value { return json::string(rule.per); }},
          {.name = "actions",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "What firing does, in order: `publish: { connector, topic, qos, retain }` "
                  "([publish](#rule-publish)) or `forward: { to: <sink> }`. Planned, refused for now with "
                  "that reason: `summarize`, `webhook`, `write`.",
           .required = true,
           .missing = "a rule needs 'actions'",
           .type_text = "list",
           .read = readActions,
           .show = showActions},
      },
      {}};
  return schema;
}

void readRules(Reader& r, const config::Node& list, EdgeConfig& out) {
  r.forEach(list, "rules", [&](const config::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a rule is a map: { name, when, actions }");
    RuleConfig rule;
    rule.at = n.place();
    const size_t errors = r.errors.size();
    readFields(ruleSchema(), n, rule, r);
    if (rule.name.empty()) return;
    for (const auto& p : rule.from) {
      const bool known = std::any_of(out.pipelines.begin(), out.pipelines.end(),
                                     [&](const PipelineConfig& k) { return k.name == p; });
      if (!known && !out.refused(p))
        r.fail(n["from"], fmt::format("rule '{}' reads unknown pipeline '{}'", rule.name, p));
    }
    if (n["actions"].IsDefined() && rule.actions.empty() && r.errors.size() == errors)
      r.fail(n["actions"], "actions lists at least one action");
    const config::Node actions = n["actions"];
    for (size_t i = 0; i < rule.actions.size(); ++i) {
      const config::Node at = actions.IsSequence() && i < actions.size() ? actions.items()[i] : n;
      if (const auto* p = std::get_if<RulePublish>(&rule.actions[i])) {
        auto c = std::find_if(out.connectors.begin(), out.connectors.end(),
                              [&](const ConnectorConfig& k) { return k.name == p->connector; });
        if (c == out.connectors.end()) {
          if (!out.refused(p->connector))
            r.fail(at, fmt::format("rule '{}' publishes through unknown connector '{}'", rule.name,
                                   p->connector));
        } else if (c->kind != "mqtt") {
          r.fail(at,
                 fmt::format("rule '{}' publishes through connector '{}', which is {} (publish needs an mqtt "
                             "connector)",
                             rule.name, p->connector, c->kind));
        }
      } else if (const auto* f = std::get_if<RuleForward>(&rule.actions[i])) {
        const bool known = std::any_of(out.sinks.begin(), out.sinks.end(),
                                       [&](const SinkConfig& k) { return k.name == f->to; });
        if (!known && !out.refused(f->to))
          r.fail(at, fmt::format("rule '{}' forwards to unknown sink '{}'", rule.name, f->to));
      }
    }
    if (r.errors.size() != errors) return;
    rule.when_program = compileCondition(r, n["when"], rule, "when", rule.when);
    if (!rule.clear_when.empty())
      rule.clear_program = compileCondition(r, n["clear_when"], rule, "clear_when", rule.clear_when);
    if (r.errors.size() != errors) return;
    for (const auto& other : out.rules)
      if (other.name == rule.name)
        return r.fail(n["name"], fmt::format("duplicate rule name '{}'", rule.name));
    rule.fingerprint = json::serialize(config::fieldsToJson(ruleSchema(), rule));
    out.rules.push_back(std::move(rule));
  });
}

json::value rulesToJson(const EdgeConfig& c) {
  json::array a;
  for (const auto& rule : c.rules) a.push_back(config::fieldsToJson(ruleSchema(), rule));
  return a;
}

}  // namespace ganglion::edge
