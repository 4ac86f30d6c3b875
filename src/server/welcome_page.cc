#include "server/welcome_page.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "base/strings.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section

namespace {

/// Config text as the page shows it: control characters (an escape sequence in a name would
/// drive the terminal of whoever curls the page) become '?'.
std::string shown(std::string_view text) { return printableText(text, text.size()); }

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + shown(n);
  return out;
}

/// Where a route sends requests, in words.
std::string targetOf(const RouteConfig& r) {
  if (r.welcome) return "this page";
  if (r.llm) return r.llm->require_key ? "the LLM API (gateway keys)" : "the LLM API (no key needed)";
  return fmt::format("upstream '{}'", shown(r.upstream));
}

std::string matchOf(const RouteConfig& r) {
  std::string m;
  if (r.match.host) m += *r.match.host;
  if (r.match.path)
    m += *r.match.path;
  else if (r.match.path_prefix)
    m += *r.match.path_prefix + (r.match.path_prefix->back() == '/' ? "" : "*");
  return m.empty() ? "/" : shown(m);
}

}  // namespace

std::string renderWelcomePage(const Config& c) {
  std::string out;
  auto line = [&]<typename... Args>(fmt::format_string<Args...> text, Args&&... args) {
    fmt::format_to(std::back_inserter(out), text, std::forward<Args>(args)...);
    out += '\n';
  };
  line("Ganglion {} is running.", GANGLION_VERSION);
  line("");
  for (const auto& l : c.listeners)
    line("Listening on {} ({}{}).", l.address.text(), shown(l.name), l.tls ? ", TLS" : "");
  line("");
  line("Routes, in the order they are tried:");
  for (const auto& r : c.routes) line("  {:<24} {:<20} -> {}", shown(r.name), matchOf(r), targetOf(r));
  line("");
  const auto& any = c.listeners.empty() ? std::string("127.0.0.1:8080") : c.listeners.front().address.text();
  if (c.providers.empty()) {
    line("The LLM API is off: no provider has a key. Set OPENAI_API_KEY, ANTHROPIC_API_KEY or");
    line("GEMINI_API_KEY and start again (the default config switches each on when its key is set),");
    line("or add a provider to the config (docs/configuration.md#providers).");
  } else {
    std::vector<std::string> providers, models;
    for (const auto& p : c.providers) providers.push_back(fmt::format("{} ({})", shown(p.name), p.kind));
    for (const auto& m : c.models) models.push_back(m.name);
    // The first route a plain GET /v1/models would take: if it is not the LLM API, say so.
    for (const auto& r : c.routes) {
      const auto& m = r.match;
      const bool takes =
          !m.host && m.headers.empty() && !m.path && m.path_prefix &&
          std::string_view("/v1/models").substr(0, m.path_prefix->size()) == *m.path_prefix &&
          (m.methods.empty() || std::find(m.methods.begin(), m.methods.end(), "GET") != m.methods.end());
      if (!takes) continue;
      if (!r.llm) {
        line("Warning: route '{}' catches /v1/ before the LLM API does, so the API cannot be reached.",
             shown(r.name));
        line("Add a route with 'match: {{ path_prefix: /v1/ }}' and 'llm: {{}}' before it.");
        line("");
      }
      break;
    }
    line("The LLM API is on: OpenAI-compatible at /v1/chat/completions, /v1/embeddings,");
    line("/v1/responses and /v1/models; Anthropic-compatible at /v1/messages.");
    line("  providers: {}", joined(providers));
    line("  models:    {}",
         models.empty() ? std::string("none yet (add some under models:)") : joined(models));
    if (!c.skipped_providers.empty())
      line("  off (no key in the environment): {}", joined(c.skipped_providers));
    std::vector<std::string> keys;
    for (const auto& k : c.keys) keys.push_back(k.name);
    line("  gateway keys: {}", keys.empty() ? std::string("none") : joined(keys));
    line("");
    line("Try it:");
    line("  curl {}/v1/models -H \"Authorization: Bearer $GANGLION_API_KEY\"", any);
    line("  curl {}/v1/chat/completions -H \"Authorization: Bearer $GANGLION_API_KEY\" \\", any);
    line("    -d '{{\"model\":\"{}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'",
         models.empty() ? std::string("MODEL") : shown(models.front()));
  }
  line("");
  if (c.admin.enabled) {
    line("Admin API on {} (Authorization: Bearer <admin token>):", c.admin.address.text());
    line("  curl -H \"Authorization: Bearer $GANGLION_ADMIN_TOKEN\" {}/metrics", c.admin.address.text());
    line("  curl -H \"Authorization: Bearer $GANGLION_ADMIN_TOKEN\" {}/config", c.admin.address.text());
  } else {
    line("The admin API is off (add an admin: section with a token to see metrics and the config).");
  }
  line("");
  line("Next: put your own services behind it (upstreams: and routes:), limit keys (rpm, tpm, budget),");
  line("then reload without dropping a connection: kill -HUP <pid> or POST /reload on the admin API.");
  line("Docs: docs/configuration.md, docs/llm-api.md, docs/admin-api.md, docs/security.md.");
  return out;
}

}  // namespace ganglion::server
