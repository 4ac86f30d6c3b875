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

void appendFamilyHead(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void appendHistogramSamples(std::string& out, std::string_view name, std::string_view labels,
                            std::span<const uint64_t> bounds_us,
                            const std::function<uint64_t(size_t)>& bucket, double sum_seconds) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_us.size(); ++i) {
    cumulative += bucket(i);
    std::string le =
        i < bounds_us.size() ? fmt::format("{}", static_cast<double>(bounds_us[i]) / 1e6) : "+Inf";
    out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, le, cumulative);
  }
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, sum_seconds);
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, cumulative);
}

namespace {

constexpr const char* kClassNames[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

void renderHistogram(std::string& out, const char* name, const std::string& labels,
                     const std::vector<const Histogram*>& hs) {
  uint64_t sum = 0;
  for (auto* h : hs) sum += h->sumUs();
  appendHistogramSamples(
      out, name, labels, Histogram::kBoundsUs,
      [&](size_t i) {
        uint64_t n = 0;
        for (auto* h : hs) n += h->bucket(i);
        return n;
      },
      static_cast<double>(sum) / 1e6);
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
  appendFamilyHead(out, "ganglion_config_version", "gauge", "Version of the config snapshot being served.");
  out += fmt::format("ganglion_config_version {}\n", info.config_version);
  appendFamilyHead(out, "ganglion_config_reloads_total", "counter",
                   "Reloads attempted (SIGHUP and POST /reload), by result.");
  out += fmt::format("ganglion_config_reloads_total{{result=\"ok\"}} {}\n", info.reloads_ok);
  out += fmt::format("ganglion_config_reloads_total{{result=\"failed\"}} {}\n", info.reloads_failed);
  appendFamilyHead(out, "ganglion_start_time_seconds", "gauge", "Process start time, Unix seconds.");
  out += fmt::format("ganglion_start_time_seconds {:.3f}\n", info.start_time_seconds);
  appendFamilyHead(out, "ganglion_workers", "gauge", "Number of worker threads.");
  out += fmt::format("ganglion_workers {}\n", workers.size());
  appendFamilyHead(out, "ganglion_connections_total", "counter", "Client connections accepted.");
  out += fmt::format("ganglion_connections_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.connections_total; }));
  appendFamilyHead(out, "ganglion_connections_active", "gauge", "Client connections open now.");
  out += fmt::format("ganglion_connections_active {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.connections_active; }));
  appendFamilyHead(out, "ganglion_http_requests_total", "counter",
                   "Request heads parsed, including those then refused.");
  out += fmt::format("ganglion_http_requests_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.requests_total; }));
  appendFamilyHead(out, "ganglion_tls_handshake_failures_total", "counter",
                   "Client TLS handshakes that failed or timed out.");
  out += fmt::format("ganglion_tls_handshake_failures_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.tls_handshake_failures; }));
  appendFamilyHead(out, "ganglion_connections_refused_per_ip_total", "counter",
                   "Connections closed at accept: their client address held max_connections_per_ip already.");
  out += fmt::format("ganglion_connections_refused_per_ip_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.connections_refused_per_ip; }));
  appendFamilyHead(out, "ganglion_headers_dropped_total", "counter",
                   "Request header fields dropped for an underscore in the name.");
  out += fmt::format("ganglion_headers_dropped_total {}\n",
                     sum([](WorkerStats& w) -> Counter& { return w.headers_dropped; }));
  appendFamilyHead(out, "ganglion_client_errors_total", "counter",
                   "Requests refused for protocol violations or timeouts.");
  static constexpr const char* kErrNames[] = {"400", "408", "413", "414", "431", "other"};
  for (size_t i = 0; i < 6; ++i) {
    uint64_t total = 0;
    for (auto* w : workers) total += w->client_errors_by_status[i].get();
    out += fmt::format("ganglion_client_errors_total{{status=\"{}\"}} {}\n", kErrNames[i], total);
  }

  appendFamilyHead(out, "ganglion_requests_total", "counter",
                   "Requests answered, by route and status class.");
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
  appendFamilyHead(out, "ganglion_request_duration_seconds", "histogram",
                   "From the first byte of the request head to the end of the response, by route.");
  out += histograms;

  histograms.clear();
  appendFamilyHead(out, "ganglion_upstream_requests_total", "counter",
                   "Response heads received from the upstream, by status class.");
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
  appendFamilyHead(out, "ganglion_upstream_failures_total", "counter",
                   "Failed upstream attempts, by reason (connect, timeout, protocol).");
  out += failures;
  appendFamilyHead(out, "ganglion_upstream_retries_total", "counter", "Upstream attempts after the first.");
  out += retries_text;
  appendFamilyHead(out, "ganglion_upstream_connections_opened_total", "counter",
                   "New connections opened to the upstream's targets.");
  out += opened_text;
  appendFamilyHead(
      out, "ganglion_upstream_stale_connections_total", "counter",
      "Pooled connections the upstream had closed, dropped before use or retried on a fresh connection.");
  out += stale_text;
  appendFamilyHead(out, "ganglion_upstream_duration_seconds", "histogram",
                   "From the start of forwarding to the upstream's response head.");
  out += histograms;

  return out;
}

}  // namespace ganglion::telemetry
