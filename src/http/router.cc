#include "http/router.h"

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <span>
#include <tuple>

#include "base/string_map.h"

namespace ganglion::http {

std::string normaliseHost(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    host = host.substr(0, close == std::string_view::npos ? host.size() : close + 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return toLower(host);
}

namespace {

std::vector<std::string> splitSegments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 1;
  while (i <= path.size()) {
    size_t slash = path.find('/', i);
    if (slash == std::string_view::npos) slash = path.size();
    out.emplace_back(path.substr(i, slash - i));
    i = slash + 1;
  }
  return out;
}

bool isCapture(std::string_view seg) { return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}'; }

}  // namespace

bool methodListed(std::span<const std::string> methods, std::string_view method) {
  for (const auto& m : methods)
    if (m == method || (method == "HEAD" && m == "GET")) return true;
  return false;
}

namespace {

bool conditionsHold(const CompiledRoute& r, const RequestHead& request) {
  const auto& m = r.config->match;
  if (!m.methods.empty() && !methodListed(m.methods, request.method)) return false;
  for (const auto& [name, value] : m.headers) {
    const Header* h = request.headers.find(name);
    if (!h || h->value != value) return false;
  }
  return true;
}

/// Routes in priority order: pointers into Router::routes_, which is sorted.
using RouteList = std::vector<const CompiledRoute*>;

const CompiledRoute* firstHolding(std::span<const CompiledRoute* const> list, const RequestHead& request) {
  for (const CompiledRoute* r : list)
    if (conditionsHold(*r, request)) return r;
  return nullptr;
}

/// The templates one request matches: few, so no allocation on the request path.
using TemplateMatches = boost::container::small_vector<const CompiledRoute*, 8>;

/// Path templates as a trie of segments: a literal child per segment text, one capture child.
struct TemplateNode {
  StringMap<std::unique_ptr<TemplateNode>> literal;
  std::unique_ptr<TemplateNode> capture;
  RouteList ends;  ///< templates with exactly the segments leading here

  void add(const CompiledRoute& r) {
    TemplateNode* node = this;
    for (const std::string& seg : r.segments) {
      std::unique_ptr<TemplateNode>& next = isCapture(seg) ? node->capture : node->literal[seg];
      if (!next) next = std::make_unique<TemplateNode>();
      node = next.get();
    }
    node->ends.push_back(&r);
  }
  /// Appends every template matching `path` from segment offset `pos` (each trie node is
  /// visited at most once, so the work is bounded by the trie's size).
  void collect(std::string_view path, size_t pos, TemplateMatches& out) const {
    const size_t slash = path.find('/', pos);
    const bool last = slash == std::string_view::npos;
    const std::string_view seg = path.substr(pos, (last ? path.size() : slash) - pos);
    auto visit = [&](const TemplateNode& child) {
      if (last)
        out.insert(out.end(), child.ends.begin(), child.ends.end());
      else
        child.collect(path, slash + 1, out);
    };
    if (auto it = literal.find(seg); it != literal.end()) visit(*it->second);
    if (capture && !seg.empty()) visit(*capture);
  }
};

/// The routes of one host condition (an exact host, a wildcard suffix, or none), by path.
struct PathIndex {
  StringMap<RouteList> exact;
  TemplateNode templates;
  bool has_templates = false;
  std::vector<size_t> prefix_lengths;  ///< distinct, longest first
  StringMap<RouteList> prefixes;

  void add(const CompiledRoute& r) {
    switch (r.path_kind) {
      case CompiledRoute::PathKind::kExact:
        exact[r.path].push_back(&r);
        break;
      case CompiledRoute::PathKind::kTemplate:
        templates.add(r);
        has_templates = true;
        break;
      case CompiledRoute::PathKind::kPrefix:
        if (prefixes.find(r.path) == prefixes.end()) prefix_lengths.push_back(r.path.size());
        prefixes[r.path].push_back(&r);
        break;
    }
  }
  void finish() {
    std::sort(prefix_lengths.begin(), prefix_lengths.end(), std::greater<>());
    prefix_lengths.erase(std::unique(prefix_lengths.begin(), prefix_lengths.end()), prefix_lengths.end());
  }
  /// Exact paths, then templates (more literal segments first), then prefixes (longer first):
  /// the path part of the priority order.
  const CompiledRoute* match(std::string_view path, const RequestHead& request) const {
    if (auto it = exact.find(path); it != exact.end())
      if (auto* r = firstHolding(it->second, request)) return r;
    if (has_templates && !path.empty() && path[0] == '/') {
      TemplateMatches found;
      templates.collect(path, 1, found);
      std::sort(found.begin(), found.end());
      if (auto* r = firstHolding(found, request)) return r;
    }
    for (size_t len : prefix_lengths) {
      if (len > path.size()) continue;
      if (auto it = prefixes.find(path.substr(0, len)); it != prefixes.end())
        if (auto* r = firstHolding(it->second, request)) return r;
    }
    return nullptr;
  }
};

}  // namespace

/// One set of routes indexed by host, then path. Routes go in in priority order, so every
/// list in it is in priority order too.
struct Router::Index {
  StringMap<PathIndex> exact_hosts;
  std::vector<size_t> wildcard_lengths;  ///< distinct suffix lengths, longest first
  StringMap<PathIndex> wildcards;        ///< by suffix (".example.com")
  PathIndex any_host;

  void add(const CompiledRoute& r) {
    switch (r.host_kind) {
      case CompiledRoute::HostKind::kExact:
        exact_hosts[r.host].add(r);
        break;
      case CompiledRoute::HostKind::kWildcard:
        if (wildcards.find(r.host) == wildcards.end()) wildcard_lengths.push_back(r.host.size());
        wildcards[r.host].add(r);
        break;
      case CompiledRoute::HostKind::kAny:
        any_host.add(r);
        break;
    }
  }
  void finish() {
    for (auto& [_, p] : exact_hosts) p.finish();
    for (auto& [_, p] : wildcards) p.finish();
    any_host.finish();
    std::sort(wildcard_lengths.begin(), wildcard_lengths.end(), std::greater<>());
    wildcard_lengths.erase(std::unique(wildcard_lengths.begin(), wildcard_lengths.end()),
                           wildcard_lengths.end());
  }
  const CompiledRoute* match(std::string_view path, const RequestHead& request) const {
    if (!exact_hosts.empty() || !wildcards.empty()) {
      const std::string host = normaliseHost(request.host());
      if (auto it = exact_hosts.find(host); it != exact_hosts.end())
        if (auto* r = it->second.match(path, request)) return r;
      for (size_t len : wildcard_lengths) {
        if (len >= host.size()) continue;  // "*.example.com" needs a label before the suffix
        if (auto it = wildcards.find(std::string_view(host).substr(host.size() - len)); it != wildcards.end())
          if (auto* r = it->second.match(path, request)) return r;
      }
    }
    return any_host.match(path, request);
  }
};

Router::Router() = default;
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

void Router::build(const std::vector<config::RouteConfig>& routes,
                   const std::function<RouteAction(const config::RouteConfig&)>& action) {
  routes_.clear();
  for (size_t i = 0; i < routes.size(); ++i) {
    const auto& rc = routes[i];
    CompiledRoute r;
    r.config = &rc;
    r.index = i;
    if (action) r.action = action(rc);
    if (rc.match.host) {
      const std::string& h = *rc.match.host;
      if (h.size() > 2 && h[0] == '*') {
        r.host_kind = CompiledRoute::HostKind::kWildcard;
        r.host = h.substr(1);  // ".example.com"
      } else {
        r.host_kind = CompiledRoute::HostKind::kExact;
        r.host = h;
      }
    }
    if (rc.match.path) {
      r.path = *rc.match.path;
      if (r.path.find('{') != std::string::npos) {
        r.path_kind = CompiledRoute::PathKind::kTemplate;
        r.segments = splitSegments(r.path);
        for (auto& s : r.segments) r.literal_segments += isCapture(s) ? 0 : 1;
      } else {
        r.path_kind = CompiledRoute::PathKind::kExact;
      }
    } else {
      r.path_kind = CompiledRoute::PathKind::kPrefix;
      r.path = rc.match.path_prefix.value_or("/");
    }
    routes_.push_back(std::move(r));
  }
  auto key = [](const CompiledRoute& r) {
    size_t conditions = r.config->match.methods.empty() ? 0 : 1;
    conditions += r.config->match.headers.size();
    long host_len = r.host_kind == CompiledRoute::HostKind::kWildcard ? -static_cast<long>(r.host.size()) : 0;
    long path_len = r.path_kind == CompiledRoute::PathKind::kPrefix ? -static_cast<long>(r.path.size())
                    : r.path_kind == CompiledRoute::PathKind::kTemplate
                        ? -static_cast<long>(r.literal_segments)
                        : 0;
    return std::make_tuple(r.config->implicit, static_cast<int>(r.host_kind), host_len,
                           static_cast<int>(r.path_kind), path_len, -static_cast<long>(conditions), r.index);
  };
  std::stable_sort(routes_.begin(), routes_.end(),
                   [&](const CompiledRoute& a, const CompiledRoute& b) { return key(a) < key(b); });
  written_ = std::make_unique<Index>();
  implicit_ = std::make_unique<Index>();
  for (const auto& r : routes_) (r.config->implicit ? *implicit_ : *written_).add(r);
  written_->finish();
  implicit_->finish();
}

const CompiledRoute* Router::match(const RequestHead& request) const {
  if (!written_) return nullptr;
  const std::string_view path = request.path();
  if (auto* r = written_->match(path, request)) return r;
  return implicit_->match(path, request);
}

std::string rewriteTarget(const http::RequestHead& req, const CompiledRoute& route) {
  const auto& rewrite = route.config->rewrite_path_prefix;
  std::string_view target = req.target;
  if (!rewrite) return std::string(target);
  std::string_view path = req.path();
  std::string_view rest = path;
  if (route.path_kind == CompiledRoute::PathKind::kPrefix)
    rest.remove_prefix(route.path.size());
  else
    rest = {};
  std::string out = *rewrite;
  if (!rest.empty() && !out.empty() && out.back() == '/' && rest.front() == '/') out.pop_back();
  out += rest;
  if (out.empty()) out.push_back('/');
  out += target.substr(path.size());  // the query, if any
  return out;
}

}  // namespace ganglion::http
