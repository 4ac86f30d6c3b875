#include "server/health_checker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "base/strings.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section
using namespace ganglion::upstream;
using namespace ganglion::llm;

namespace asio = boost::asio;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

void HealthChecker::apply(const std::shared_ptr<const Snapshot>& snapshot) {
  uint64_t generation = ++generation_;
  for (size_t u = 0; u < snapshot->upstreams.size(); ++u) {
    const auto& up = snapshot->upstreams[u];
    if (!up.config->health_check) {
      // Checks switched off: what they last said no longer applies.
      for (const auto& t : up.targets) t.health->active_healthy.store(true, std::memory_order_relaxed);
      continue;
    }
    for (size_t t = 0; t < up.targets.size(); ++t)
      asio::co_spawn(io_, probeLoop(snapshot, u, t, generation), asio::detached);
  }
}

asio::awaitable<bool> HealthChecker::probeOnce(const ResolvedTarget& target, const HealthCheckConfig& hc) {
  asio::ip::tcp::socket socket(io_);
  asio::steady_timer timer(io_);
  bool timed_out = false;
  timer.expires_after(hc.timeout);
  timer.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    timed_out = true;
    boost::system::error_code ignored;
    socket.close(ignored);
  });
  auto [cec, endpoint] = co_await asio::async_connect(socket, target.endpoints, kNoThrow);
  if (cec || timed_out) co_return false;
  std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ganglion-health-check\r\n"
      "Connection: close\r\n\r\n",
      hc.path, hc.host.empty() ? target.host_header : hc.host);
  auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(request), kNoThrow);
  if (wec) co_return false;
  char buf[512];
  size_t have = 0;
  // Only the status line matters: "HTTP/1.1 200 ...".
  while (have < 12) {
    auto [rec, n] = co_await socket.async_read_some(asio::buffer(buf + have, sizeof buf - have), kNoThrow);
    if (rec || n == 0) co_return false;
    have += n;
  }
  timer.cancel();
  std::string_view line(buf, have);
  if (line.substr(0, 7) != "HTTP/1." || line[8] != ' ') co_return false;
  auto status = parseUint(line.substr(9, 3));
  co_return status&& static_cast<int>(*status) >= hc.expect_min&& static_cast<int>(*status) <= hc.expect_max;
}

asio::awaitable<void> HealthChecker::probeLoop(std::shared_ptr<const Snapshot> snapshot, size_t upstream,
                                               size_t target_index, uint64_t generation) {
  const auto& up = snapshot->upstreams[upstream];
  const auto& target = up.targets[target_index];
  const auto& hc = *up.config->health_check;
  auto& health = *target.health;
  asio::steady_timer pause(io_);
  while (generation == generation_) {
    bool ok = co_await probeOnce(target, hc);
    if (generation != generation_) break;
    if (ok) {
      health.check_failures = 0;
      ++health.check_passes;
      if (!health.active_healthy.load() && health.check_passes >= hc.healthy_threshold) {
        health.active_healthy.store(true);
        log_(fmt::format("upstream '{}' target {} is healthy again", up.config->name, target.key));
      }
    } else {
      health.check_passes = 0;
      ++health.check_failures;
      if (health.active_healthy.load() && health.check_failures >= hc.unhealthy_threshold) {
        health.active_healthy.store(false);
        log_(fmt::format("upstream '{}' target {} failed {} health checks: out of rotation", up.config->name,
                         target.key, health.check_failures));
      }
    }
    pause.expires_after(hc.interval);
    co_await pause.async_wait(kNoThrow);
  }
}

}  // namespace ganglion::server
