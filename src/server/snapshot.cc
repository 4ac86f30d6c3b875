#include "server/snapshot.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "base/hash.h"
#include "llm/catalog.h"
#include "server/handler_table.h"
#include "server/welcome_page.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section
using namespace ganglion::upstream;
using namespace ganglion::llm;

namespace {

/// Nginx's smooth weighted round-robin, precomputed: weights {5,1,1} give a,a,b,a,c,a,a.
std::vector<uint32_t> smoothSchedule(const std::vector<ResolvedTarget>& targets) {
  uint64_t total = 0;
  for (auto& t : targets) total += t.weight;
  // Bounded so a schedule stays small; large weights are scaled down proportionally.
  double scale = total > 4096 ? 4096.0 / static_cast<double>(total) : 1.0;
  std::vector<int64_t> weights, current(targets.size(), 0);
  int64_t sum = 0;
  for (auto& t : targets) {
    weights.push_back(std::max<int64_t>(1, static_cast<int64_t>(t.weight * scale)));
    sum += weights.back();
  }
  std::vector<uint32_t> schedule;
  for (int64_t n = 0; n < sum; ++n) {
    size_t best = 0;
    for (size_t i = 0; i < targets.size(); ++i) {
      current[i] += weights[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= sum;
    schedule.push_back(static_cast<uint32_t>(best));
  }
  return schedule;
}

/// Ketama-style ring: 100 points per unit of weight (capped), so removing one target moves
/// only its share of keys.
std::vector<std::pair<uint64_t, uint32_t>> hashRing(const std::vector<ResolvedTarget>& targets) {
  std::vector<std::pair<uint64_t, uint32_t>> ring;
  for (uint32_t i = 0; i < targets.size(); ++i) {
    uint32_t points = std::min<uint32_t>(100 * targets[i].weight, 10'000);
    for (uint32_t p = 0; p < points; ++p)
      ring.emplace_back(consistentHash(fmt::format("{}#{}", targets[i].key, p)), i);
  }
  std::sort(ring.begin(), ring.end());
  return ring;
}

}  // namespace

void HealthRegistry::retainOnly(const std::vector<ResolvedUpstream>& upstreams) {
  std::map<std::string, std::shared_ptr<upstream::TargetHealth>> kept;
  for (const auto& u : upstreams)
    for (const auto& t : u.targets) kept[key(u.config->name, t.key)] = t.health;
  entries_ = std::move(kept);
}

ResolvedNames resolveUpstreamNames(const Config& cfg, std::vector<ConfigError>& errors) {
  ResolvedNames out;
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  for (const auto& u : cfg.upstreams)
    for (const auto& t : u.targets) {
      boost::system::error_code ec;
      boost::asio::ip::make_address(t.address.host, ec);
      if (!ec || out.count(t.address.text())) continue;  // an address, or already resolved
      auto results = resolver.resolve(t.address.host, std::to_string(t.address.port), ec);
      if (ec || results.empty()) {
        errors.push_back({cfg.source_path, u.at.line,
                          fmt::format("upstream '{}': cannot resolve '{}': {}", u.name, t.address.host,
                                      ec ? ec.message() : "no address"),
                          u.at.path});
        continue;
      }
      auto& endpoints = out[t.address.text()];
      for (const auto& r : results) endpoints.push_back(r.endpoint());
    }
  return out;
}

BuildResult buildSnapshot(Config config, uint64_t version, HealthRegistry& health,
                          const ResolvedNames& resolved) {
  BuildResult result;
  auto snap = std::make_shared<Snapshot>();
  snap->config = std::move(config);
  snap->version = version;
  const Config& cfg = snap->config;
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  // `lazy`: a name that does not resolve now is resolved on first use and by the DNS refresh
  // (LLM providers: a gateway must start without network, e.g. in a build sandbox).
  auto resolve = [&](const UpstreamConfig& u, bool lazy) {
    ResolvedUpstream ru;
    ru.config = &u;
    for (const auto& t : u.targets) {
      ResolvedTarget rt;
      rt.key = t.address.text();
      rt.host_header = t.address.text();
      rt.host = t.address.host;
      rt.weight = t.weight;
      rt.health = health.get(u.name, rt.key);
      boost::system::error_code ec;
      auto addr = boost::asio::ip::make_address(t.address.host, ec);
      if (!ec) {
        rt.endpoints.emplace_back(addr, t.address.port);
      } else if (auto known = resolved.find(rt.key); known != resolved.end()) {
        rt.endpoints = known->second;
      } else if (!lazy) {
        auto results = resolver.resolve(t.address.host, std::to_string(t.address.port), ec);
        if (ec || results.empty()) {
          result.errors.push_back({cfg.source_path, u.at.line,
                                   fmt::format("upstream '{}': cannot resolve '{}': {}", u.name,
                                               t.address.host, ec ? ec.message() : "no address"),
                                   u.at.path});
          continue;
        }
        for (const auto& r : results) rt.endpoints.push_back(r.endpoint());
      }
      ru.targets.push_back(std::move(rt));
    }
    ru.schedule = smoothSchedule(ru.targets);
    if (u.balance == Balance::kHash) ru.ring = hashRing(ru.targets);
    snap->upstreams.push_back(std::move(ru));
  };
  for (const auto& u : cfg.upstreams) resolve(u, false);
  for (const auto& p : cfg.providers) {
    snap->provider_upstreams.push_back(snap->upstreams.size());
    resolve(p.upstream, true);
  }
  // Edge sinks ("sink:<name>"), resolved lazily as providers are.
  for (const auto& s : cfg.edge.sinks) resolve(s.upstream, true);
  for (const auto& rule : cfg.edge.rules)  // rules' webhooks ("webhook:<rule>/<action>")
    for (const auto& action : rule.actions)
      if (const auto* w = std::get_if<edge::RuleWebhook>(&action)) resolve(w->upstream, true);
  const bool llm_route =
      std::any_of(cfg.routes.begin(), cfg.routes.end(), [](const auto& r) { return r.llm.has_value(); });
  if (!cfg.providers.empty() || llm_route)
    snap->llm = std::make_shared<llm::Catalog>(cfg.providers, cfg.models, snap->provider_upstreams,
                                               llm::LlmSettings{cfg.key_table, cfg.state, cfg.llm_cache});
  snap->router.build(cfg.routes, [&](const RouteConfig& rc) { return routeAction(rc, cfg); });
  for (const auto& r : cfg.routes)
    if (r.welcome) snap->welcome_page = renderWelcomePage(cfg);
  if (result.errors.empty()) result.snapshot = std::move(snap);
  return result;
}

}  // namespace ganglion::server
