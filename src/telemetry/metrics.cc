#include "telemetry/metrics.h"

#include <fmt/format.h>

namespace ganglion::telemetry {

RequestStats* WorkerStats::route(const std::string& name) {
  std::lock_guard lock(mutex);
  auto& slot = routes[name];
  if (!slot) slot = std::make_unique<RequestStats>();
  return slot.get();
}

UpstreamStats* WorkerStats::upstream(const std::string& name) {
  std::lock_guard lock(mutex);
  auto& slot = upstreams[name];
  if (!slot) slot = std::make_unique<UpstreamStats>();
  return slot.get();
}

std::string labelValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

namespace {

constexpr const char* kClassNames[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

void renderHistogram(std::string& out, const char* name, const std::string& labels,
                     const std::vector<const Histogram*>& hs) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= Histogram::kBoundsUs.size(); ++i) {
    for (auto* h : hs) cumulative += h->bucket(i);
    std::string le = i < Histogram::kBoundsUs.size()
                         ? fmt::format("{}", static_cast<double>(Histogram::kBoundsUs[i]) / 1e6)
                         : "+Inf";
    out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, le, cumulative);
  }
  uint64_t sum = 0;
  for (auto* h : hs) sum += h->sumUs();
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, static_cast<double>(sum) / 1e6);
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, cumulative);
}

template <typename Stats, typename Fn>
void forEachNamed(const std::vector<WorkerStats*>& workers,
                  std::map<std::string, std::unique_ptr<Stats>> WorkerStats::*member, Fn&& fn) {
  std::map<std::string, std::vector<const Stats*>> by_name;
  for (auto* w : workers) {
    std::lock_guard lock(w->mutex);
    for (auto& [name, s] : w->*member) by_name[name].push_back(s.get());
  }
  for (auto& [name, list] : by_name) fn(name, list);
}

}  // namespace

std::string renderPrometheus(const std::vector<WorkerStats*>& workers, const ProcessInfo& info) {
  std::string out;
  auto sum = [&](auto getter) {
    uint64_t total = 0;
    for (auto* w : workers) total += getter(*w).get();
    return total;
  };
  out += "# HELP ganglion_config_version Version of the config snapshot being served.\n";
  out += "# TYPE ganglion_config_version gauge\n";
  out += fmt::format("ganglion_config_version {}\n", info.config_version);
  out += "# HELP ganglion_config_reloads_total Reloads attempted (SIGHUP and POST /reload), by result.\n";
  out += "# TYPE ganglion_config_reloads_total counter\n";
  out += fmt::format("ganglion_config_reloads_total{{result=\"ok\"}} {}\n", info.reloads_ok);
  out += fmt::format("ganglion_config_reloads_total{{result=\"failed\"}} {}\n", info.reloads_failed);
  out += "# HELP ganglion_start_time_seconds Process start time, Unix seconds.\n";
  out += "# TYPE ganglion_start_time_seconds gauge\n";
  out += fmt::format("ganglion_start_time_seconds {:.3f}\n", info.start_time_seconds);
  out += "# HELP ganglion_workers Number of worker threads.\n";
  out += "# TYPE ganglion_workers gauge\n";
  out += fmt::format("ganglion_workers {}\n", workers.size());
  out += "# HELP ganglion_connections_total Client connections accepted.\n";
  out += "# TYPE ganglion_connections_total counter\n";
  out += fmt::format("ganglion_connections_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.connections_total; }));
  out += "# HELP ganglion_connections_active Client connections open now.\n";
  out += "# TYPE ganglion_connections_active gauge\n";
  out += fmt::format("ganglion_connections_active {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.connections_active; }));
  out += "# HELP ganglion_http_requests_total Request heads parsed, including those then refused.\n";
  out += "# TYPE ganglion_http_requests_total counter\n";
  out += fmt::format("ganglion_http_requests_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.requests_total; }));
  out += "# HELP ganglion_tls_handshake_failures_total Client TLS handshakes that failed or timed out.\n";
  out += "# TYPE ganglion_tls_handshake_failures_total counter\n";
  out += fmt::format("ganglion_tls_handshake_failures_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.tls_handshake_failures; }));
  out +=
      "# HELP ganglion_connections_refused_per_ip_total Connections closed at accept: their client address "
      "held max_connections_per_ip already.\n";
  out += "# TYPE ganglion_connections_refused_per_ip_total counter\n";
  out += fmt::format("ganglion_connections_refused_per_ip_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.connections_refused_per_ip; }));
  out +=
      "# HELP ganglion_headers_dropped_total Request header fields dropped for an underscore in the name.\n";
  out += "# TYPE ganglion_headers_dropped_total counter\n";
  out += fmt::format("ganglion_headers_dropped_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.headers_dropped; }));
  out += "# HELP ganglion_client_errors_total Requests refused for protocol violations or timeouts.\n";
  out += "# TYPE ganglion_client_errors_total counter\n";
  static constexpr const char* kErrNames[] = {"400", "408", "413", "414", "431", "other"};
  for (size_t i = 0; i < 6; ++i) {
    uint64_t total = 0;
    for (auto* w : workers) total += w->client_errors_by_status[i].get();
    out += fmt::format("ganglion_client_errors_total{{status=\"{}\"}} {}\n", kErrNames[i], total);
  }

  out += "# HELP ganglion_requests_total Requests answered, by route and status class.\n";
  out += "# TYPE ganglion_requests_total counter\n";
  std::string histograms;
  forEachNamed<RequestStats>(workers, &WorkerStats::routes, [&](const std::string& name, auto& list) {
    std::string labels = fmt::format("route=\"{}\"", labelValue(name));
    for (size_t c = 0; c < 5; ++c) {
      uint64_t total = 0;
      for (auto* s : list) total += s->by_class[c].get();
      out += fmt::format("ganglion_requests_total{{{},code=\"{}\"}} {}\n", labels, kClassNames[c], total);
    }
    std::vector<const Histogram*> hs;
    for (auto* s : list) hs.push_back(&s->latency);
    renderHistogram(histograms, "ganglion_request_duration_seconds", labels, hs);
  });
  out +=
      "# HELP ganglion_request_duration_seconds From the first byte of the request head to the end of the "
      "response, by route.\n";
  out += "# TYPE ganglion_request_duration_seconds histogram\n" + histograms;

  histograms.clear();
  out +=
      "# HELP ganglion_upstream_requests_total Response heads received from the upstream, by status class.\n";
  out += "# TYPE ganglion_upstream_requests_total counter\n";
  std::string failures, retries_text, opened_text, stale_text;
  forEachNamed<UpstreamStats>(workers, &WorkerStats::upstreams, [&](const std::string& name, auto& list) {
    std::string labels = fmt::format("upstream=\"{}\"", labelValue(name));
    for (size_t c = 0; c < 5; ++c) {
      uint64_t total = 0;
      for (auto* s : list) total += s->by_class[c].get();
      out += fmt::format("ganglion_upstream_requests_total{{{},code=\"{}\"}} {}\n", labels, kClassNames[c],
                         total);
    }
    auto add = [&](const char* reason, Counter UpstreamStats::*m) {
      uint64_t total = 0;
      for (auto* s : list) total += (s->*m).get();
      failures +=
          fmt::format("ganglion_upstream_failures_total{{{},reason=\"{}\"}} {}\n", labels, reason, total);
    };
    add("connect", &UpstreamStats::connect_failures);
    add("timeout", &UpstreamStats::timeouts);
    add("protocol", &UpstreamStats::protocol_errors);
    uint64_t retries = 0, opened = 0, stale = 0;
    for (auto* s : list) {
      retries += s->retries.get();
      opened += s->connections_opened.get();
      stale += s->stale_connections.get();
    }
    stale_text += fmt::format("ganglion_upstream_stale_connections_total{{{}}} {}\n", labels, stale);
    retries_text += fmt::format("ganglion_upstream_retries_total{{{}}} {}\n", labels, retries);
    opened_text += fmt::format("ganglion_upstream_connections_opened_total{{{}}} {}\n", labels, opened);
    std::vector<const Histogram*> hs;
    for (auto* s : list) hs.push_back(&s->latency);
    renderHistogram(histograms, "ganglion_upstream_duration_seconds", labels, hs);
  });
  out +=
      "# HELP ganglion_upstream_failures_total Failed upstream attempts, by reason (connect, timeout, "
      "protocol).\n";
  out += "# TYPE ganglion_upstream_failures_total counter\n" + failures;
  out += "# HELP ganglion_upstream_retries_total Upstream attempts after the first.\n";
  out += "# TYPE ganglion_upstream_retries_total counter\n" + retries_text;
  out +=
      "# HELP ganglion_upstream_connections_opened_total New connections opened to the upstream's targets.\n";
  out += "# TYPE ganglion_upstream_connections_opened_total counter\n" + opened_text;
  out +=
      "# HELP ganglion_upstream_stale_connections_total Pooled connections the upstream had closed, "
      "dropped before use or retried on a fresh connection.\n";
  out += "# TYPE ganglion_upstream_stale_connections_total counter\n" + stale_text;
  out +=
      "# HELP ganglion_upstream_duration_seconds From the start of forwarding to the upstream's response "
      "head.\n";
  out += "# TYPE ganglion_upstream_duration_seconds histogram\n" + histograms;

  return out;
}

}  // namespace ganglion::telemetry
