// output_guard: withholds responses whose text matches a deny pattern: a model's answer on an
// `llm:` route (the gateway's own OpenAI or Anthropic shape, streamed or not) or an upstream's
// body on a proxy route. It asks for the whole response body (held by the connection before
// any byte goes out, at most max_body_bytes), checks its raw text and the decoded strings of
// any JSON in it with RE2 (time linear in the text whatever the pattern), streamed deltas
// joined per choice, tool call and content block. A body it cannot read (compressed, too
// large, JSON too deep) is refused, never passed unchecked.
#include <boost/json.hpp>
#include <map>

#include "base/bounded_json.h"
#include "base/strings.h"
#include "filters/pattern_list.h"
#include "filters/registry.h"
#include "http/sse.h"

namespace ganglion::filters {

namespace {

namespace json = boost::json;

/// Keys whose string values are a model's words (answer text, its deltas, tool arguments,
/// reasoning), in any API's shape: streamed deltas of these are joined per channel so that a
/// pattern split across events still matches.
bool isTextKey(std::string_view key) {
  for (std::string_view k : {"content", "text", "delta", "arguments", "partial_json", "refusal", "thinking",
                             "reasoning_content", "output_text", "response"})
    if (iequals(key, k)) return true;
  return false;
}

/// Keys whose integer value says which part of an answer an object belongs to (a choice, a
/// tool call, a content block, an output item): text under different values is never joined.
bool isIndexKey(std::string_view key) {
  return key == "index" || key == "output_index" || key == "content_index" || key == "choice_index";
}

/// The texts of an answer as the guard checks them: every string value alone, and the text
/// fields joined per channel (the chain of index values above them), in document order.
struct AnswerTexts {
  std::vector<std::string> each;
  std::map<std::string, std::string> joined;  ///< channel → its text so far

  void collect(const json::value& v, std::string_view key, const std::string& channel) {
    switch (v.kind()) {
      case json::kind::string: {
        std::string_view s = v.get_string();
        each.emplace_back(s);
        if (isTextKey(key)) joined[channel].append(s);
        break;
      }
      case json::kind::array:
        for (const auto& x : v.get_array()) collect(x, key, channel);
        break;
      case json::kind::object: {
        std::string inner = channel;
        for (const auto& kv : v.get_object())
          if (isIndexKey(kv.key()) && kv.value().is_number())
            inner += fmt::format("{}{}/", std::string_view(kv.key()), json::serialize(kv.value()));
        for (const auto& kv : v.get_object()) collect(kv.value(), kv.key(), inner);
        break;
      }
      default:
        break;
    }
  }
};

/// Parses `text` as one JSON document into `out`; false when it is not JSON. Sets `too_big`
/// when it is JSON past the bounds.
bool collectJson(std::string_view text, AnswerTexts& out, bool& too_big) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a BOM, as lenient readers skip it
  auto storage = json::make_shared_resource<json::monotonic_resource>();
  BoundedJson parsed = parseBoundedJson(text, JsonBounds{}, storage);
  if (parsed.fault == JsonFault::kSyntax) return false;
  if (parsed.fault != JsonFault::kNone) {
    too_big = true;
    return true;
  }
  out.collect(parsed.value, {}, {});
  return true;
}

class OutputGuardFilter final : public http::Filter {
 public:
  OutputGuardFilter(std::unique_ptr<PatternList> deny, uint64_t max_bytes)
      : deny_(std::move(deny)), max_bytes_(max_bytes) {}

  /// Asks upstreams for the whole body, uncompressed: a compressed one could not be checked,
  /// and ranges would hand out a withheld text piece by piece.
  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    ctx.request.headers.remove("accept-encoding");
    ctx.request.headers.remove("range");
    ctx.request.headers.remove("if-range");
    return http::FilterStatus::kContinue;
  }
  uint64_t wholeResponseBodyLimit() const override { return max_bytes_; }
  http::FilterStatus onResponseBody(http::FilterContext& ctx, const http::ResponseHead& head,
                                    std::string_view body) const override {
    if (body.empty()) return http::FilterStatus::kContinue;
    if (http::hasContentCoding(head.headers))
      return http::replyWith(ctx, 502, "response_unreadable",
                             "output_guard cannot read a compressed response");
    // The raw text always (plain text, SSE comments and fields, JSON keys and numbers), then
    // the decoded strings of whatever JSON it holds, whatever the Content-Type says: a client
    // may decode escapes (\u0073ecret) that the raw text hides.
    if (deny_->matches(body)) return blocked(ctx);
    AnswerTexts texts;
    bool too_big = false;
    const std::string_view type = head.headers.get("content-type");
    const std::string_view media = trim(type.substr(0, type.find(';')));
    if (iequals(media, "text/event-stream")) {
      http::SseParser parser(max_bytes_);
      parser.feed(body, [&](const http::SseEvent& e) {
        if (!collectJson(e.data, texts, too_big)) texts.each.emplace_back(e.data);  // copied: views end here
      });
    } else if (!collectJson(body, texts, too_big)) {
      // JSON lines (NDJSON streams): each line a document, joined per channel across lines.
      for (size_t at = 0; at < body.size() && !too_big;) {
        const size_t end = std::min(body.find('\n', at), body.size());
        const std::string_view line = trim(body.substr(at, end - at));
        if (!line.empty() && (line.front() == '{' || line.front() == '[')) collectJson(line, texts, too_big);
        at = end + 1;
      }
    }
    if (too_big)
      return http::replyWith(
          ctx, 502, "response_unreadable",
          "output_guard could not read the response: it nests too deep or holds too many JSON values");
    for (const auto& [channel, text] : texts.joined)
      if (deny_->matches(text)) return blocked(ctx);
    for (const auto& text : texts.each)
      if (deny_->matches(text)) return blocked(ctx);
    return http::FilterStatus::kContinue;
  }
  std::string_view kind() const override { return "output_guard"; }

 private:
  static http::FilterStatus blocked(http::FilterContext& ctx) {
    return http::replyWith(ctx, 400, "output_blocked",
                           "the response was withheld: it matches a pattern this route does not allow");
  }

  std::unique_ptr<PatternList> deny_;
  uint64_t max_bytes_;
};

/// The settings as written, read with outputGuardSchema().
struct OutputGuardSettings {
  std::vector<std::string> deny;  ///< as written, for GET /config
  std::unique_ptr<PatternList> deny_set = std::make_unique<PatternList>();
  uint64_t max_body_bytes = 8ull << 20;
};

void readDeny(config::Reader& r, const config::Node& list, OutputGuardSettings& s) {
  readPatternList(r, list, "output_guard deny", *s.deny_set, s.deny, EmptyMatch::kRefuse);
}

/// The patterns often spell out what must not leak: GET /config shows how many, not which.
json::value showDeny(const OutputGuardSettings& s) {
  return json::string(fmt::format("<redacted: {} pattern{}>", s.deny.size(), s.deny.size() == 1 ? "" : "s"));
}

const config::Schema<OutputGuardSettings>& outputGuardSchema() {
  using config::FieldKind;
  static const config::Schema<OutputGuardSettings> schema{
      "output_guard",
      {
          {.name = "deny",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "",
           .doc = "A response whose text matches any of them (anywhere in it) is withheld.",
           .required = true,
           .missing = "output_guard needs 'deny' patterns",
           .type_text = "list of patterns",
           .read = &readDeny,
           .show = &showDeny},
          {.name = "max_body_bytes",
           .kind = FieldKind::kSize,
           .member = &OutputGuardSettings::max_body_bytes,
           .default_text = "`8M`",
           .doc =
               "Largest response it holds and reads; a longer one is refused with `502 response_too_large`, "
               "never passed unchecked.",
           .min = 1,
           .what = "output_guard max_body_bytes"},
      },
      {},
      "output_guard takes a map: { deny, max_body_bytes }"};
  return schema;
}

}  // namespace

FilterPtr buildOutputGuard(const config::Node& node, config::Reader& r, const FilterInputs&,
                           json::object& shown) {
  OutputGuardSettings s;
  if (!readSettings(outputGuardSchema(), node, s, r)) return nullptr;
  if (s.deny.empty()) {
    r.fail(node, "output_guard needs 'deny' patterns");
    return nullptr;
  }
  shown = config::fieldsToJson(outputGuardSchema(), s);
  return std::make_shared<OutputGuardFilter>(std::move(s.deny_set), s.max_body_bytes);
}

std::string outputGuardDocsTable() { return config::docsTable(outputGuardSchema()); }

}  // namespace ganglion::filters
