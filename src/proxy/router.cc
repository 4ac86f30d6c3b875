#include "proxy/router.h"

#include <algorithm>
#include <tuple>

namespace ganglion::proxy {

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

bool matchTemplate(const CompiledRoute& r, std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  size_t pos = 1;
  for (size_t i = 0; i < r.segments.size(); ++i) {
    if (pos > path.size()) return false;
    size_t slash = path.find('/', pos);
    bool last = i + 1 == r.segments.size();
    if (last && slash != std::string_view::npos) return false;
    if (!last && slash == std::string_view::npos) return false;
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(pos, slash - pos);
    const std::string& want = r.segments[i];
    if (isCapture(want)) {
      if (seg.empty()) return false;
    } else if (seg != want) {
      return false;
    }
    pos = slash + 1;
  }
  return true;
}

}  // namespace

void Router::build(const std::vector<control::RouteConfig>& routes,
                   const std::vector<control::UpstreamConfig>& upstreams) {
  routes_.clear();
  for (size_t i = 0; i < routes.size(); ++i) {
    const auto& rc = routes[i];
    CompiledRoute r;
    r.config = &rc;
    r.index = i;
    for (size_t u = 0; u < upstreams.size(); ++u)
      if (upstreams[u].name == rc.upstream) r.upstream_index = u;
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
}

const CompiledRoute* Router::match(const http::RequestHead& request) const {
  std::string_view path = request.path();
  std::string host;  // normalised lazily: most configs have no host conditions
  bool host_ready = false;
  for (const auto& r : routes_) {
    if (r.host_kind != CompiledRoute::HostKind::kAny) {
      if (!host_ready) {
        host = normaliseHost(request.host());
        host_ready = true;
      }
      if (r.host_kind == CompiledRoute::HostKind::kExact) {
        if (host != r.host) continue;
      } else if (host.size() <= r.host.size() ||
                 std::string_view(host).substr(host.size() - r.host.size()) != r.host) {
        continue;
      }
    }
    switch (r.path_kind) {
      case CompiledRoute::PathKind::kExact:
        if (path != r.path) continue;
        break;
      case CompiledRoute::PathKind::kPrefix:
        if (path.substr(0, r.path.size()) != r.path) continue;
        break;
      case CompiledRoute::PathKind::kTemplate:
        if (!matchTemplate(r, path)) continue;
        break;
    }
    const auto& m = r.config->match;
    if (!m.methods.empty() &&
        std::find(m.methods.begin(), m.methods.end(), request.method) == m.methods.end())
      continue;
    bool headers_ok = true;
    for (const auto& [name, value] : m.headers) {
      const http::Header* h = request.headers.find(name);
      if (!h || h->value != value) {
        headers_ok = false;
        break;
      }
    }
    if (!headers_ok) continue;
    return &r;
  }
  return nullptr;
}

}  // namespace ganglion::proxy
