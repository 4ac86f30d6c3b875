#include "admin/router.h"

#include <boost/url/pct_string_view.hpp>

#include "base/strings.h"

namespace ganglion::admin {

namespace {

std::vector<std::string_view> segmentsOf(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    out.push_back(path.substr(i, end - i));
    i = end;
  }
  return out;
}

/// A path segment percent-decoded (Boost.URL); one that is not valid percent-encoding (no
/// such segment survives a listener's path normalisation) is kept as written.
std::string decodedSegment(std::string_view segment) {
  auto pct = boost::urls::make_pct_string_view(segment);
  return pct ? pct->decode() : std::string(segment);
}

}  // namespace

void Router::add(std::string_view method, std::string_view pattern, Endpoint endpoint, bool open) {
  Entry e{std::string(method), {}, std::move(endpoint), open};
  for (auto seg : segmentsOf(pattern)) e.segments.emplace_back(seg);
  entries_.push_back(std::move(e));
}

bool Router::matchPath(const Entry& e, const std::vector<std::string_view>& segments, Params* params) {
  if (e.segments.size() != segments.size()) return false;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& want = e.segments[i];
    const bool capture = want.size() > 2 && want.front() == '{' && want.back() == '}';
    if (!capture && want != segments[i]) return false;
  }
  if (params) {
    params->clear();
    for (size_t i = 0; i < segments.size(); ++i) {
      const std::string& want = e.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}')
        params->emplace_back(want.substr(1, want.size() - 2), decodedSegment(segments[i]));
    }
  }
  return true;
}

Router::Match Router::match(std::string_view method, std::string_view path, Params& params) const {
  const auto segments = segmentsOf(path);
  Match m;
  bool all_open = true;
  for (const auto& e : entries_) {
    if (!matchPath(e, segments, nullptr)) continue;
    all_open = all_open && e.open;
    if (e.method == method || (method == "HEAD" && e.method == "GET")) {
      matchPath(e, segments, &params);
      m.endpoint = &e.endpoint;
      m.open = e.open;
      return m;
    }
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += e.method;
    if (e.method == "GET") m.allow += ", HEAD";
  }
  m.open = !m.allow.empty() && all_open;  // a wrong method on an open path: its 405 needs no token
  return m;
}

}  // namespace ganglion::admin
