// prompt_guard: refuses model requests whose prompts match a deny pattern (or, with allow
// patterns, match none of them), before anything reaches a model. It reads the whole request
// body (bounded), finds the message texts of any common model API (prompt_texts.h) and checks
// the roles it is told to with RE2, whose matching time is linear in the text whatever the
// pattern, so no prompt can make a pattern backtrack for seconds. A body it cannot read
// (not JSON, compressed, token ids, too large) is refused, never waved through.
#include <boost/json.hpp>

#include "base/bounded_json.h"
#include "filters/pattern_list.h"
#include "filters/prompt_guard/prompt_texts.h"
#include "filters/registry.h"
#include "loop/pools.h"

namespace ganglion::filters {

namespace {

/// Bodies up to this size are checked on the worker; larger ones on the compute pool.
constexpr size_t kInlineCheckBytes = 64 * 1024;

class PromptGuardFilter final : public http::Filter {
 public:
  PromptGuardFilter(std::unique_ptr<PatternList> deny, std::unique_ptr<PatternList> allow, uint8_t roles,
                    uint64_t max_bytes)
      : deny_(std::move(deny)), allow_(std::move(allow)), roles_(roles), max_bytes_(max_bytes) {}

  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    // Every Content-Encoding line and every coding in it: the upstream may decode any of them.
    if (http::hasContentCoding(ctx.request.headers))
      return http::replyWith(
          ctx, 415, "unsupported_content_encoding",
          "prompt_guard cannot read a compressed request body; send it without Content-Encoding");
    return http::FilterStatus::kContinue;
  }
  uint64_t wholeRequestBodyLimit() const override { return max_bytes_; }
  http::FilterStatus onRequestBody(http::FilterContext& ctx, std::string_view body) const override {
    if (body.empty()) return http::FilterStatus::kContinue;  // nothing a model would read
    if (body.size() <= kInlineCheckBytes) return answer(ctx, check(body));
    ctx.resume.emplace(checkOnComputePool(ctx, body));
    return http::FilterStatus::kPause;
  }
  std::string_view kind() const override { return "prompt_guard"; }

 private:
  struct Verdict {
    int status = 0;  ///< 0: the prompts pass
    std::string type, message;
  };

  /// Parses the body and checks its texts. Any thread; reads only the body and the patterns.
  Verdict check(std::string_view body) const {
    auto storage = boost::json::make_shared_resource<boost::json::monotonic_resource>();
    BoundedJson parsed = parseBoundedJson(body, JsonBounds{}, storage);
    if (parsed.fault != JsonFault::kNone)
      return {
          400, "invalid_json",
          parsed.fault == JsonFault::kSyntax
              ? fmt::format("prompt_guard could not read the request body as JSON: {} at byte {}",
                            parsed.reason, parsed.at)
              : std::string("prompt_guard could not read the request body: it nests too deep or holds too "
                            "many JSON values")};
    std::vector<PromptText> texts;
    if (auto why = collectPromptTexts(parsed.value, texts))
      return {400, "prompt_unreadable", "prompt_guard: " + *why};
    for (const auto& t : texts) {
      if (!(roles_ & t.role)) continue;
      if (!deny_->empty() && deny_->matches(t.text))
        return {400, "prompt_blocked",
                "the prompt was refused: it matches a pattern this route does not allow"};
      if (t.recognised && !allow_->empty() && !allow_->matches(t.text))
        return {400, "prompt_blocked",
                "the prompt was refused: it matches none of the patterns this route allows"};
    }
    return {};
  }

  boost::asio::awaitable<http::FilterStatus> checkOnComputePool(http::FilterContext& ctx,
                                                                std::string_view body) const {
    // The connection manager stays suspended here until the check returns, even when the
    // client leaves, so `body` (the connection's) and `this` (the route's) outlive it.
    Verdict v = co_await loop::runCompute([this, body] { return check(body); });
    co_return answer(ctx, std::move(v));
  }

  static http::FilterStatus answer(http::FilterContext& ctx, Verdict v) {
    if (v.status == 0) return http::FilterStatus::kContinue;
    return http::replyWith(ctx, v.status, v.type, std::move(v.message));
  }

  std::unique_ptr<PatternList> deny_, allow_;
  uint8_t roles_;
  uint64_t max_bytes_;
};

/// The settings as written, read with promptGuardSchema().
struct PromptGuardSettings {
  std::vector<std::string> deny, allow;  ///< as written, for GET /config
  std::unique_ptr<PatternList> deny_set = std::make_unique<PatternList>();
  std::unique_ptr<PatternList> allow_set = std::make_unique<PatternList>();
  uint8_t roles = kRoleUser;
  std::vector<std::string> role_names{"user"};
  uint64_t max_body_bytes = 8ull << 20;
};

namespace json = boost::json;

template <std::vector<std::string> PromptGuardSettings::*Text,
          std::unique_ptr<PatternList> PromptGuardSettings::*Set, const char* What>
void readPatterns(config::Reader& r, const config::Node& list, PromptGuardSettings& s) {
  readPatternList(r, list, fmt::format("prompt_guard {}", What), *(s.*Set), s.*Text);
}

void readRoles(config::Reader& r, const config::Node& v, PromptGuardSettings& s) {
  s.roles = 0;
  s.role_names.clear();
  const size_t errors_before = r.errors.size();
  r.forEach(v, "prompt_guard.roles", [&](const config::Node& n) {
    auto name = r.str(n, "role");
    if (!name) return;
    if (*name == "system" || *name == "developer")
      s.roles |= kRoleSystem;
    else if (*name == "user")
      s.roles |= kRoleUser;
    else if (*name == "assistant")
      s.roles |= kRoleAssistant;
    else if (*name == "tool")
      s.roles |= kRoleTool;
    else
      return r.fail(
          n, fmt::format(
                 "prompt_guard roles: unknown role '{}' (known: system, developer, user, assistant, tool)",
                 *name));
    s.role_names.push_back(*name);
  });
  if (s.roles == 0 && r.errors.size() == errors_before)
    r.fail(v, "prompt_guard roles must name at least one role");
}

constexpr char kDeny[] = "deny";
constexpr char kAllow[] = "allow";

const config::Schema<PromptGuardSettings>& promptGuardSchema() {
  using config::FieldKind;
  static const config::Schema<PromptGuardSettings> schema{
      "prompt_guard",
      {
          {.name = "deny",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "A prompt text matching any of them (anywhere in it) is refused.",
           .type_text = "list of patterns",
           .read = &readPatterns<&PromptGuardSettings::deny, &PromptGuardSettings::deny_set, kDeny>,
           .show = &config::showStrings<PromptGuardSettings, &PromptGuardSettings::deny>},
          {.name = "allow",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "When given, each checked text must match at least one.",
           .type_text = "list of patterns",
           .read = &readPatterns<&PromptGuardSettings::allow, &PromptGuardSettings::allow_set, kAllow>,
           .show = &config::showStrings<PromptGuardSettings, &PromptGuardSettings::allow>},
          {.name = "roles",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`[ user ]`",
           .doc =
               "Whose texts are checked: `system` (also `developer`, `instructions`, Gemini's "
               "`systemInstruction`), `user`, `assistant` (also Gemini's `model`), `tool` (tool and function "
               "results). A message with a role the APIs do not name counts as `user`.",
           .type_text = "list",
           .read = &readRoles,
           .show = &config::showStrings<PromptGuardSettings, &PromptGuardSettings::role_names>},
          {.name = "max_body_bytes",
           .kind = FieldKind::kSize,
           .member = &PromptGuardSettings::max_body_bytes,
           .default_text = "`8M`",
           .doc = "Largest body it reads; a longer one is refused with `413`, never passed unchecked.",
           .min = 1,
           .what = "prompt_guard max_body_bytes"},
      },
      {},
      "prompt_guard takes a map: { deny, allow, roles, max_body_bytes }"};
  return schema;
}

}  // namespace

FilterPtr buildPromptGuard(const config::Node& node, config::Reader& r, const FilterInputs&,
                           json::object& shown) {
  PromptGuardSettings s;
  if (!readSettings(promptGuardSchema(), node, s, r)) return nullptr;
  if (s.deny.empty() && s.allow.empty()) {
    r.fail(node, "prompt_guard needs 'deny' or 'allow' patterns");
    return nullptr;
  }
  shown = config::fieldsToJson(promptGuardSchema(), s);
  return std::make_shared<PromptGuardFilter>(std::move(s.deny_set), std::move(s.allow_set), s.roles,
                                             s.max_body_bytes);
}

std::string promptGuardDocsTable() { return config::docsTable(promptGuardSchema()); }

}  // namespace ganglion::filters
