// `rules:` (docs/configuration.md "rules", docs/edge.md "Rules"): conditions compiled at load
// (errors with line and column), topic templates split once, references to pipelines,
// connectors and sinks checked. Main thread (config load) or the blocking pool.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <boost/json.hpp>
#include <cctype>

#include "base/strings.h"
#include "edge/edge_config.h"

namespace ganglion::edge {

namespace json = boost::json;
using config::FieldKind;
using config::Reader;
using config::Schema;

namespace {

constexpr std::string_view kActionKinds = "publish, forward, summarize, webhook, write";
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

}  // namespace

bool parseTopicTemplate(Reader& r, const config::Node& v, std::string_view text, TopicTemplate& out,
                        bool sink) {
  const std::optional<std::string> s(std::string{text});
  TopicTemplate t;
  t.text = *s;
  std::string probe;  // the template with each placeholder as one plain level, for the topic checks
  std::string_view rest = *s;
  while (!rest.empty()) {
    const size_t open = rest.find('{');
    const size_t close = rest.find('}');
    if (close < open) return r.fail(v, fmt::format("topic '{}': a '}}' without its '{{'", *s)), false;
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
      return r.fail(v, fmt::format("topic '{}': a '{{' without its '}}'", *s)), false;
    const std::string_view name = rest.substr(open + 1, close - open - 1);
    if (sink && name == "pipeline")
      return r.fail(v, fmt::format("topic '{}': a sink's records do not name their pipeline (known: device, "
                                   "metric, source, kind, rule, or a text field)",
                                   *s)),
             false;
    if (!knownPlaceholder(name))
      return r.fail(v, fmt::format("topic '{}': unknown placeholder '{{{}}}' (known: {})", *s, name,
                                   kPlaceholders)),
             false;
    t.pieces.push_back({true, std::string(name)});
    probe += "x";
    rest.remove_prefix(close + 1);
  }
  if (std::string why = mqtt::checkTopicName(probe); !why.empty())
    return r.fail(v, fmt::format("topic '{}': {}", *s, why)), false;
  if (probe.front() == '$')
    return r.fail(v, fmt::format("topic '{}': topics starting with '$' belong to the broker", *s)), false;
  out = std::move(t);
  return true;
}

const MqttSubscription* subscriptionReading(const EdgeConfig& cfg, const std::string& connector,
                                            const TopicTemplate& topic) {
  auto c = std::find_if(cfg.connectors.begin(), cfg.connectors.end(),
                        [&](const ConnectorConfig& k) { return k.name == connector; });
  if (c == cfg.connectors.end() || topic.pieces.empty()) return nullptr;
  std::string probe;
  for (const auto& piece : topic.pieces) probe += piece.placeholder ? "x" : piece.text;
  for (const auto& sub : c->subscribe)
    if (mqtt::topicMatches(mqtt::matchFilter(sub.topic), probe)) return &sub;
  return nullptr;
}

namespace {

template <class A>
void readTopicTemplate(Reader& r, const config::Node& v, A& action) {
  if (auto s = r.str(v, "topic")) parseTopicTemplate(r, v, *s, action.topic);
}

void readPer(Reader& r, const config::Node& v, RuleConfig& rule) {
  auto s = r.str(v, "per");
  if (!s) return;
  if (*s != "device" && *s != "series" && *s != "rule")
    return r.fail(v, fmt::format("per must be device, series or rule, got '{}'", *s));
  rule.per = *s;
}

/// A rule's expression (`when`, `clear_when`: a condition; a write's `value`: not), compiled
/// against every field; an error names the rule and `field`.
std::shared_ptr<const expr::Program> compileRuleExpression(Reader& r, const config::Node& v,
                                                           const RuleConfig& rule, std::string_view field,
                                                           const std::string& text,
                                                           const std::shared_ptr<const FieldNames>& names,
                                                           bool condition = true) {
  expr::Scope scope;
  scope.names = names.get();
  scope.all_fields = true;
  scope.attrs_field = names->find("attrs");
  auto program = expr::compile(text, scope, condition);
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
    if (kind == "summarize") {
      if (!config::isSectionMap(r, body, ruleSummarizeSchema())) return;
      RuleSummarize sum;
      const size_t before = r.errors.size();
      readFields(ruleSummarizeSchema(), body, sum, r);
      if (r.errors.size() == before && body["prompt"].IsDefined() && trim(sum.prompt).empty())
        r.fail(body["prompt"], "summarize needs a 'prompt' that says what to do");
      if (r.errors.size() == before) {
        if (sum.to.empty() && sum.topic.text.empty())
          r.fail(body, "summarize needs 'to' (a sink) or 'connector' and 'topic', or both");
        if (sum.topic.text.empty() != sum.connector.empty())
          r.fail(body, "summarize publishes with both 'connector' and 'topic', or neither");
      }
      rule.actions.emplace_back(std::move(sum));
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
    if (kind == "webhook") {
      if (!config::isSectionMap(r, body, ruleWebhookSchema())) return;
      RuleWebhook w;
      readFields(ruleWebhookSchema(), body, w, r);
      // The url is checked whenever it was read: a bad header does not hide a bad scheme.
      if (!w.url.empty()) {
        std::string error;
        if (!splitHttpUrl(w.url, w.https, w.host, w.port, w.path, error)) r.fail(body["url"], error);
      }
      rule.actions.emplace_back(std::move(w));
      return;
    }
    if (kind == "write") {
      if (!config::isSectionMap(r, body, ruleWriteSchema())) return;
      RuleWrite w;
      const size_t before = r.errors.size();
      readFields(ruleWriteSchema(), body, w, r);
      if (r.errors.size() == before) rule.actions.emplace_back(std::move(w));  // one mistake, one message
      return;
    }
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
    else if (const auto* sum = std::get_if<RuleSummarize>(&action))
      o["summarize"] = config::fieldsToJson(ruleSummarizeSchema(), *sum);
    else if (const auto* w = std::get_if<RuleWebhook>(&action))
      o["webhook"] = config::fieldsToJson(ruleWebhookSchema(), *w);
    else if (const auto* wr = std::get_if<RuleWrite>(&action))
      o["write"] = config::fieldsToJson(ruleWriteSchema(), *wr);
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
           .read = readTopicTemplate<P>,
           .show = [](const P& p) -> json::value { return json::string(p.topic.text); }},
          {.name = "qos",
           .kind = FieldKind::kInteger,
           .member = &P::qos,
           .default_text = "`1`",
           .doc =
               "0, 1 or 2. Messages wait in the connector's [outbox](edge.md#rules-outbox) until the "
               "broker acknowledges them (QoS 1, 2) or they are written (QoS 0), and are sent again after a "
               "lost connection; the outbox's `max_bytes` caps what waits.",
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

const Schema<RuleWebhook>& ruleWebhookSchema() {
  using W = RuleWebhook;
  static const Schema<RuleWebhook> schema{
      "webhook",
      {
          {.name = "url",
           .kind = FieldKind::kString,
           .member = &W::url,
           .default_text = "—",
           .doc =
               "`http://` or `https://` (verified against the system's CAs); the record is POSTed to it as "
               "JSON. No credentials in it: a token goes in `headers` (GET /config shows its query values "
               "`<redacted>` all the same).",
           .required = true,
           .missing = "webhook needs a 'url'",
           .show = [](const W& w) { return json::value(redactUrl(w.url)); }},
          {.name = "headers",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "Sent with each call (`authorization: \"Bearer ${HOOK_TOKEN}\"`); values are secrets: "
                  "GET /config shows `<redacted>`, logs never show them.",
           .type_text = "map",
           .read = [](Reader& r, const config::Node& v, W& w) { readHeaderMap(r, v, w.headers); },
           .show = [](const W& w) { return showHeaderMap(w.headers); }},
          {.name = "timeout",
           .kind = FieldKind::kDuration,
           .member = &W::timeout,
           .default_text = "`5s`",
           .doc = "For one call, from connecting to the whole answer.",
           .min = 1},
          {.name = "retries",
           .kind = FieldKind::kInteger,
           .member = &W::retries,
           .default_text = "`3`",
           .doc = "Calls after the first when one fails (no answer, or not 2xx), waiting 200 ms, then twice "
                  "as long each time; then the action counts as failed.",
           .min = 0,
           .max = 10},
      },
      {}};
  return schema;
}

const Schema<RuleWrite>& ruleWriteSchema() {
  using W = RuleWrite;
  static const Schema<RuleWrite> schema{
      "write",
      {
          {.name = "connector",
           .kind = FieldKind::kString,
           .member = &W::connector,
           .default_text = "—",
           .doc = "A `modbus_tcp` or `modbus_rtu` connector; its poll thread makes the write between polls.",
           .required = true,
           .missing = "write needs a 'connector' (a modbus connector)"},
          {.name = "register",
           .kind = FieldKind::kString,
           .member = &W::register_name,
           .default_text = "—",
           .doc = "One of the connector's `registers`, by name, marked `writable: true` (a holding register "
                  "or a coil); its type, byte and word order, `scale` and `offset` encode the value.",
           .required = true,
           .missing = "write needs a 'register' (one the connector marks writable)"},
          {.name = "value",
           .kind = FieldKind::kString,
           .member = &W::value,
           .default_text = "—",
           .doc = "An [expression](edge.md#expressions) of the firing record: `\"0\"`, `\"value * 0.9\"`; a "
                  "condition writes 1 or 0. A result that is null or does not fit the register fails the "
                  "action.",
           .required = true,
           .missing = "write needs a 'value' (an expression)"},
      },
      {}};
  return schema;
}

const Schema<RuleSummarize>& ruleSummarizeSchema() {
  using S = RuleSummarize;
  static const Schema<RuleSummarize> schema{
      "summarize",
      {
          {.name = "model",
           .kind = FieldKind::kString,
           .member = &S::model,
           .default_text = "—",
           .doc = "A model of `models`: the gateway's own LLM router calls it (its targets, fallback and "
                  "retries).",
           .required = true,
           .missing = "summarize needs a 'model' (one of models)"},
          {.name = "prompt",
           .kind = FieldKind::kString,
           .member = &S::prompt,
           .default_text = "—",
           .doc = "The instruction, sent as the system message; the user message holds the firing record "
                  "and the device's recent records as JSON lines.",
           .required = true,
           .missing = "summarize needs a 'prompt'"},
          {.name = "to",
           .kind = FieldKind::kString,
           .member = &S::to,
           .default_text = "none",
           .doc = "A sink the `summary` record goes to."},
          {.name = "connector",
           .kind = FieldKind::kString,
           .member = &S::connector,
           .default_text = "none",
           .doc = "An `mqtt` connector to publish the `summary` record through (with `topic`)."},
          {.name = "topic",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "The topic for the summary, with placeholders as for `publish`.",
           .type_text = "template",
           .read = readTopicTemplate<S>,
           .show = [](const S& s) -> json::value {
             if (s.topic.text.empty()) return nullptr;
             return json::string(s.topic.text);
           }},
          {.name = "qos",
           .kind = FieldKind::kInteger,
           .member = &S::qos,
           .default_text = "`1`",
           .doc = "The QoS of the published summary.",
           .max = 2},
          {.name = "context",
           .kind = FieldKind::kInteger,
           .member = &S::context,
           .default_text = "`10`",
           .doc = "How many of the device's recent records (of the last 1,024 the pipeline emitted) go with "
                  "the prompt, oldest first.",
           .max = 100},
          {.name = "max_tokens",
           .kind = FieldKind::kInteger,
           .member = &S::max_tokens,
           .default_text = "`400`",
           .doc = "The most tokens the answer may have.",
           .min = 1,
           .max = 16384},
          {.name = "timeout",
           .kind = FieldKind::kDuration,
           .member = &S::timeout,
           .default_text = "`30s`",
           .doc = "How long the model may take to start answering, and between reads of its answer.",
           .min = 100},
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
           .doc =
               "What firing does, in order: `publish: { connector, topic, qos, retain }` "
               "([publish](#rule-publish)), `forward: { to: <sink> }` or `summarize: { model, prompt, to }` "
               "([summarize](#rule-summarize)), `webhook: { url, headers }` ([webhook](#rule-webhook)) or "
               "`write: { connector, register, value }` ([write](#rule-write)).",
           .required = true,
           .missing = "a rule needs 'actions'",
           .type_text = "list",
           .read = readActions,
           .show = showActions},
      },
      {}};
  return schema;
}

void readRules(Reader& r, const config::Node& list, EdgeConfig& out,
               const std::vector<std::string>& model_names) {
  if (list.IsSequence())
    for (const auto& n : list.items())
      if (n.IsMap() && n["actions"].IsSequence())
        for (const auto& a : n["actions"].items())
          if (a.IsMap() && a["summarize"].IsDefined()) out.rules_summarize = true;
  r.forEach(list, "rules", [&](const config::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a rule is a map: { name, when, actions }");
    RuleConfig rule;
    rule.at = n.place();
    const size_t errors = r.errors.size();
    readFields(ruleSchema(), n, rule, r);
    if (rule.name.empty()) return;
    if (out.readBefore("rule", rule.name))
      r.fail(n["name"], fmt::format("duplicate rule name '{}'", rule.name));
    // It goes into topics ({rule}) and record ids (<id>/<rule>): a plain name.
    const bool plain = std::all_of(rule.name.begin(), rule.name.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.';
    });
    if (!plain)
      return r.fail(n["name"], fmt::format("rule name '{}' may hold only letters, digits, '-', '_' and '.'",
                                           printableText(rule.name, 64)));
    for (const auto& p : rule.from) {
      const bool known = std::any_of(out.pipelines.begin(), out.pipelines.end(),
                                     [&](const PipelineConfig& k) { return k.name == p; });
      if (!known && !out.refused(p))
        r.fail(n["from"], fmt::format("rule '{}' reads unknown pipeline '{}'", rule.name, p));
    }
    if (n["actions"].IsDefined() && rule.actions.empty() && r.errors.size() == errors)
      r.fail(n["actions"], "actions lists at least one action");
    const config::Node actions = n["actions"];
    auto checkConnector = [&](const std::string& name, const config::Node& at) {
      auto c = std::find_if(out.connectors.begin(), out.connectors.end(),
                            [&](const ConnectorConfig& k) { return k.name == name; });
      if (c == out.connectors.end()) {
        if (!out.refused(name))
          r.fail(at, fmt::format("rule '{}' publishes through unknown connector '{}'", rule.name, name));
      } else if (c->kind != "mqtt") {
        r.fail(at,
               fmt::format("rule '{}' publishes through connector '{}', which is {} (publish needs an mqtt "
                           "connector)",
                           rule.name, name, c->kind));
      }
    };
    for (size_t i = 0; i < rule.actions.size(); ++i) {
      const config::Node at = actions.IsSequence() && i < actions.size() ? actions.items()[i] : n;
      auto checkSink = [&](const std::string& sink, std::string_view verb) {
        const bool known = std::any_of(out.sinks.begin(), out.sinks.end(),
                                       [&](const SinkConfig& k) { return k.name == sink; });
        if (!known && !out.refused(sink))
          r.fail(at, fmt::format("rule '{}' {} unknown sink '{}'", rule.name, verb, sink));
      };
      // A topic the connector's own subscriptions read would bring every message back as a
      // reading, which may fire the rule again: a loop.
      auto checkLoop = [&](const std::string& connector, const TopicTemplate& topic) {
        if (const MqttSubscription* sub = subscriptionReading(out, connector, topic))
          r.fail(at,
                 fmt::format("rule '{}' publishes to '{}', which connector '{}' reads ('{}'): each message "
                             "would come back as a reading",
                             rule.name, topic.text, connector, sub->topic));
      };
      if (const auto* p = std::get_if<RulePublish>(&rule.actions[i])) {
        checkConnector(p->connector, at);
        checkLoop(p->connector, p->topic);
      } else if (const auto* f = std::get_if<RuleForward>(&rule.actions[i])) {
        checkSink(f->to, "forwards to");
      } else if (const auto* sum = std::get_if<RuleSummarize>(&rule.actions[i])) {
        if (std::find(model_names.begin(), model_names.end(), sum->model) == model_names.end())
          r.fail(at, fmt::format("rule '{}' summarizes with unknown model '{}' (models: {})", rule.name,
                                 sum->model,
                                 model_names.empty() ? std::string("none")
                                                     : fmt::format("{}", fmt::join(model_names, ", "))));
        if (!sum->to.empty()) checkSink(sum->to, "sends summaries to");
        if (!sum->connector.empty()) {
          checkConnector(sum->connector, at);
          checkLoop(sum->connector, sum->topic);
        }
      } else if (auto* wr = std::get_if<RuleWrite>(&rule.actions[i])) {
        auto c = std::find_if(out.connectors.begin(), out.connectors.end(),
                              [&](const ConnectorConfig& k) { return k.name == wr->connector; });
        if (c == out.connectors.end()) {
          if (!out.refused(wr->connector))
            r.fail(at,
                   fmt::format("rule '{}' writes through unknown connector '{}'", rule.name, wr->connector));
        } else if (c->kind != "modbus_tcp" && c->kind != "modbus_rtu") {
          r.fail(at, fmt::format("rule '{}' writes through connector '{}', which is {} (write needs a modbus "
                                 "connector)",
                                 rule.name, wr->connector, c->kind));
        } else {
          auto reg = std::find_if(c->registers.begin(), c->registers.end(),
                                  [&](const ModbusRegister& m) { return m.name == wr->register_name; });
          if (reg == c->registers.end())
            r.fail(at, fmt::format("rule '{}' writes register '{}', which connector '{}' does not have",
                                   rule.name, wr->register_name, wr->connector));
          else if (!reg->writable)
            r.fail(at, fmt::format("rule '{}' writes register '{}' of connector '{}', which is not marked "
                                   "writable: true",
                                   rule.name, wr->register_name, wr->connector));
          else
            wr->register_index = static_cast<size_t>(reg - c->registers.begin());
        }
        const config::Node value_at = at.IsMap() && at["write"].IsMap() ? at["write"]["value"] : at;
        auto program =
            compileRuleExpression(r, value_at, rule, "write.value", wr->value, configFieldNames(out),
                                  /*condition=*/false);
        if (program && program->resultType() != expr::Type::kNumber &&
            program->resultType() != expr::Type::kAny && program->resultType() != expr::Type::kBool)
          r.fail(value_at, fmt::format("rule '{}': write.value gives {}, not a number", rule.name,
                                       expr::typeName(program->resultType())));
        else
          wr->value_program = std::move(program);
      } else if (auto* w = std::get_if<RuleWebhook>(&rule.actions[i]); w && !w->host.empty()) {
        if (auto made = makeTargetUpstream(fmt::format("webhook:{}/{}", rule.name, i), w->host, w->port,
                                           w->https, w->timeout, at.place(), w->upstream);
            !made)
          r.fail(at, made.error().message);
      }
    }
    // The conditions are checked even when an action was wrong: one run of `check` says both.
    if (!rule.when.empty())
      rule.when_program = compileRuleExpression(r, n["when"], rule, "when", rule.when, configFieldNames(out));
    if (!rule.clear_when.empty())
      rule.clear_program = compileRuleExpression(r, n["clear_when"], rule, "clear_when", rule.clear_when,
                                                 configFieldNames(out));
    if (r.errors.size() != errors) return;
    rule.fingerprint = json::serialize(config::fieldsToJson(ruleSchema(), rule));
    // GET /config shows no header values: a changed token must still make a changed rule.
    for (const auto& action : rule.actions)
      if (const auto* w = std::get_if<RuleWebhook>(&action))
        for (const auto& [name, value] : w->headers) rule.fingerprint += "\x1f" + name + "=" + value;
    out.rules.push_back(std::move(rule));
  });
}

json::value rulesToJson(const EdgeConfig& c) { return config::listToJson(ruleSchema(), c.rules); }

}  // namespace ganglion::edge
