#include "filters/registry.h"

#include <boost/json/serialize.hpp>

namespace ganglion::filters {

namespace {

struct Entry {
  std::string_view kind;
  Factory build;
  std::string (*docs_table)();
};

constexpr Entry kBuiltins[] = {
    {"key_auth", &buildKeyAuth, &keyAuthDocsTable},
    {"rate_limit", &buildRateLimit, &rateLimitDocsTable},
    {"cors", &buildCors, &corsDocsTable},
    {"ip_filter", &buildIpFilter, &ipFilterDocsTable},
    {"headers", &buildHeaders, &headersDocsTable},
    {"prompt_guard", &buildPromptGuard, &promptGuardDocsTable},
    {"output_guard", &buildOutputGuard, &outputGuardDocsTable},
};

}  // namespace

const std::vector<std::string_view>& filterKinds() {
  static const std::vector<std::string_view> kinds = [] {
    std::vector<std::string_view> out;
    for (const auto& e : kBuiltins) out.push_back(e.kind);
    return out;
  }();
  return kinds;
}

BuiltFilter buildFilter(std::string_view kind, const config::Node& node, config::Reader& r,
                        const FilterInputs& inputs) {
  for (const auto& e : kBuiltins) {
    if (e.kind != kind) continue;
    boost::json::object settings;
    BuiltFilter built;
    built.filter = e.build(node, r, inputs, settings);
    if (built.filter) built.shown = boost::json::serialize(boost::json::object{{kind, std::move(settings)}});
    return built;
  }
  std::string known;
  for (auto k : filterKinds()) known += known.empty() ? std::string(k) : ", " + std::string(k);
  r.fail(node, fmt::format("unknown filter '{}' (known: {})", kind, known));
  return {};
}

std::vector<FilterDocsTable> filterDocsTables() {
  std::vector<FilterDocsTable> out;
  for (const auto& e : kBuiltins) out.push_back({e.kind, e.docs_table()});
  return out;
}

}  // namespace ganglion::filters
