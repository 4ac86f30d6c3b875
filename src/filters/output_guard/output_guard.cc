// output_guard: withholds responses whose text matches a deny pattern: a model's answer on an
// `llm:` route (the gateway's own OpenAI or Anthropic shape, streamed or not) or an upstream's
// body on a proxy route. It asks for the whole response body (held by the connection before
// any byte goes out, at most max_body_bytes), reads its texts and checks them with RE2 (time
// linear in the text whatever the pattern). A body it cannot read (compressed, too large,
// JSON too deep) is refused, never passed unchecked.
#include <boost/json.hpp>

#include "base/bounded_json.h"
#include "base/strings.h"
#include "filters/pattern_list.h"
#include "filters/registry.h"
#include "http/sse.h"

namespace ganglion::filters {

namespace {

namespace json = boost::json;

/// Keys whose string values are a model's words (answer text, its deltas, tool arguments,
/// reasoning), in any API's shape: streamed deltas of these are joined so that a pattern split
/// across events still matches.
bool isTextKey(std::string_view key) {
  for (std::string_view k : {"content", "text", "delta", "arguments", "partial_json", "refusal", "thinking",
                             "reasoning_content", "output_text"})
    if (iequals(key, k)) return true;
  return false;
}

/// Every string of `v`: each one checked alone (`each`), and those under text keys appended
/// to `joined` in document order.
void collectStrings(const json::value& v, std::string_view key, std::vector<std::string_view>& each,
                    std::string& joined) {
  switch (v.kind()) {
    case json::kind::string: {
      std::string_view s = v.get_string();
      each.push_back(s);
      if (isTextKey(key)) joined.append(s);
      break;
    }
    case json::kind::array:
      for (const auto& x : v.get_array()) collectStrings(x, key, each, joined);
      break;
    case json::kind::object:
      for (const auto& kv : v.get_object()) collectStrings(kv.value(), kv.key(), each, joined);
      break;
    default:
      break;
  }
}

class OutputGuardFilter final : public http::Filter {
 public:
  OutputGuardFilter(std::unique_ptr<PatternList> deny, uint64_t max_bytes)
      : deny_(std::move(deny)), max_bytes_(max_bytes) {}

  /// Asks upstreams for an uncompressed body: a compressed one could not be checked.
  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    ctx.request.headers.remove("accept-encoding");
    return http::FilterStatus::kContinue;
  }
  uint64_t wholeResponseBodyLimit() const override { return max_bytes_; }
  http::FilterStatus onResponseBody(http::FilterContext& ctx, const http::ResponseHead& head,
                                    std::string_view body) const override {
    if (body.empty()) return http::FilterStatus::kContinue;
    for (const auto& h : head.headers) {
      if (!iequals(h.name, "content-encoding")) continue;
      std::string_view coding = trim(h.value);
      if (!coding.empty() && !iequals(coding, "identity"))
        return refuse(ctx, 502, "response_unreadable",
                      fmt::format("output_guard cannot read a response encoded as '{}'", coding));
    }
    const std::string_view type = head.headers.get("content-type");
    const std::string_view media = trim(type.substr(0, type.find(';')));
    std::vector<std::string_view> each;
    std::string joined;
    auto storage = json::make_shared_resource<json::monotonic_resource>();
    std::vector<json::value> documents;  // keep the parsed events alive while `each` points into them
    if (iequals(media, "text/event-stream")) {
      http::SseParser parser(max_bytes_);
      bool unreadable = false;
      parser.feed(body, [&](const http::SseEvent& e) {
        if (unreadable) return;
        BoundedJson parsed = parseBoundedJson(e.data, JsonBounds{}, storage);
        if (parsed.fault == JsonFault::kNone) {
          documents.push_back(std::move(parsed.value));
        } else if (parsed.fault != JsonFault::kSyntax) {
          unreadable = true;
        } else {
          each.push_back(e.data);  // not JSON ("[DONE]", plain text): checked as it is
        }
      });
      if (unreadable)
        return refuse(ctx, 502, "response_unreadable", "output_guard could not read the response");
      for (const auto& d : documents) collectStrings(d, {}, each, joined);
    } else if (iequals(media, "application/json") ||
               (media.size() > 5 && iequals(media.substr(media.size() - 5), "+json"))) {
      BoundedJson parsed = parseBoundedJson(body, JsonBounds{}, storage);
      if (parsed.fault == JsonFault::kNone) {
        documents.push_back(std::move(parsed.value));
        collectStrings(documents.back(), {}, each, joined);
      } else if (parsed.fault == JsonFault::kSyntax) {
        each.push_back(body);  // says JSON, is not: checked as text
      } else {
        return refuse(
            ctx, 502, "response_unreadable",
            "output_guard could not read the response: it nests too deep or holds too many JSON values");
      }
    } else {
      each.push_back(body);
    }
    bool blocked = deny_->matches(joined);
    for (size_t i = 0; !blocked && i < each.size(); ++i) blocked = deny_->matches(each[i]);
    if (!blocked) return http::FilterStatus::kContinue;
    return refuse(ctx, 400, "output_blocked",
                  "the response was withheld: it matches a pattern this route does not allow");
  }
  std::string_view kind() const override { return "output_guard"; }

 private:
  static http::FilterStatus refuse(http::FilterContext& ctx, int status, std::string_view type,
                                   std::string message) {
    ctx.reply = {status, std::string(type), std::move(message), {}};
    return http::FilterStatus::kReply;
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
  readPatternList(r, list, "output_guard deny", *s.deny_set, s.deny);
}

json::value showDeny(const OutputGuardSettings& s) {
  json::array out;
  for (const auto& x : s.deny) out.emplace_back(x);
  return out;
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
