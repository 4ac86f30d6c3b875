#include "filters/registry.h"

namespace ganglion::filters {

namespace {

struct Entry {
  std::string_view kind;
  FilterPtr (*build)(const config::Node&, config::Reader&, const config::Config&);
};

constexpr Entry kBuiltins[] = {
    {"key_auth", &buildKeyAuth},   {"rate_limit", &buildRateLimit}, {"cors", &buildCors},
    {"ip_filter", &buildIpFilter}, {"headers", &buildHeaders},      {"prompt_guard", &buildPromptGuard},
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

FilterPtr buildFilter(std::string_view kind, const config::Node& node, config::Reader& r,
                      const config::Config& config) {
  for (const auto& e : kBuiltins)
    if (e.kind == kind) return e.build(node, r, config);
  std::string known;
  for (auto k : filterKinds()) known += known.empty() ? std::string(k) : ", " + std::string(k);
  r.fail(node, fmt::format("unknown filter '{}' (known: {})", kind, known));
  return nullptr;
}

}  // namespace ganglion::filters
