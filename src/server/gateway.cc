#include "server/gateway.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <future>
#include <map>
#include <set>

#include "base/log.h"
#include "base/result.h"
#include "edge/edge_runtime.h"
#include "http/server_connection.h"
#include "llm/prices.h"
#include "llm/shared_limits.h"
#include "loop/pools.h"
#include "loop/worker.h"
#include "net/host_address.h"
#include "server/binary_upgrade.h"
#include "server/config_loader.h"
#include "server/handler_table.h"
#include "telemetry/access_log.h"
#include "telemetry/metrics.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section

template <class Fn>
auto Gateway::onSpendStrand(Fn fn) -> decltype(fn()) {
  auto task = std::make_shared<std::packaged_task<decltype(fn())()>>(std::move(fn));
  auto result = task->get_future();
  boost::asio::post(*spend_strand_, [task] { (*task)(); });
  return result.get();
}

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr auto kDrainTimeout = std::chrono::seconds(15);

struct WorkerListener {
  WorkerListener(asio::io_context& io, http::ListenerLimits l) : limits(l), acceptor(io) {}
  http::ListenerLimits limits;
  tcp::acceptor acceptor;
};

struct WorkerContext {
  WorkerContext(unsigned index, telemetry::AccessLog* log, llm::KeyLedger& ledger, llm::ResponseCache& cache)
      : worker(index), requests(worker, stats, log, ledger, cache) {}
  loop::Worker worker;
  telemetry::WorkerStats stats;
  WorkerRequests requests;
  /// Acceptors by listener address; usually one, more after adopting a parent's sockets.
  std::map<std::string, std::vector<std::shared_ptr<WorkerListener>>> listeners;
  bool draining = false;
};

/// The workers and their upstream runtimes, as the edge runtime sees them.
class GatewayEdge final : public edge::EdgeHost {
 public:
  explicit GatewayEdge(std::vector<std::unique_ptr<WorkerContext>>& workers) : workers_(workers) {}
  size_t workerCount() const override { return workers_.size(); }
  loop::Worker& worker(size_t index) override { return workers_[index]->worker; }
  std::shared_ptr<upstream::UpstreamRuntime> upstream(size_t index, std::string_view name) override {
    return workers_[index]->requests.upstreamRuntime(name);
  }
  boost::asio::awaitable<Result<edge::ModelAnswer>> complete(size_t index, const std::string& model,
                                                             const std::string& system,
                                                             const std::string& user, uint32_t max_tokens,
                                                             std::chrono::milliseconds timeout) override {
    return workers_[index]->requests.complete(model, system, user, max_tokens, timeout);
  }

 private:
  std::vector<std::unique_ptr<WorkerContext>>& workers_;
};

namespace {

http::ListenerLimits limitsOf(const ListenerConfig& l) {
  http::ListenerLimits limits;
  limits.parse.max_head_bytes = l.max_header_bytes;
  limits.parse.max_uri_bytes = l.max_uri_bytes;
  limits.parse.max_headers = l.max_headers;
  limits.header_timeout = l.header_timeout;
  limits.body_timeout = l.body_timeout;
  limits.idle_timeout = l.idle_timeout;
  limits.send_timeout = l.send_timeout;
  limits.body_min_rate = l.body_min_rate;
  limits.underscores_in_headers = l.underscores_in_headers;
  limits.normalize_path = l.normalize_path;
  if (l.max_connections_per_ip)
    limits.per_ip = std::make_shared<net::IpConnectionLimit>(l.max_connections_per_ip);
  if (l.max_buffered_body_bytes)
    limits.body_budget = std::make_shared<net::ByteBudget>(l.max_buffered_body_bytes);
  limits.tls = l.tls;
  return limits;
}

/// A TCP socket bound to `address` (SO_REUSEADDR: TIME_WAIT leftovers are fine; with `share`
/// also SO_REUSEPORT), or why not.
ganglion::Result<int> bindTcp(const HostPort& address, bool share) {
  auto addr = net::bindAddressOf(address.host);
  if (!addr) return ganglion::Error{fmt::format("listener address '{}' is not an IP address", address.host)};
  tcp::endpoint endpoint(*addr, address.port);
  int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ganglion::Error{fmt::format("socket(): {}", std::strerror(errno))};
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (share) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EADDRINUSE && !share)
      return ganglion::Error{fmt::format(
          "cannot listen on {}: the address is already in use by another process", address.text())};
    return ganglion::Error{fmt::format("cannot listen on {}: {}", address.text(), std::strerror(err))};
  }
  return fd;
}

/// Fails when another process (another gateway, nginx...) already listens on `address`. The
/// workers' sockets share the address through SO_REUSEPORT, which would also let a second
/// gateway share it silently and split the traffic between two configs; a probe bound without
/// SO_REUSEPORT is refused by any listener there. Binary upgrades inherit their sockets and
/// never probe.
ganglion::Result<void> requireAddressFree(const HostPort& address) {
  auto probe = bindTcp(address, false);
  if (!probe) return probe.error();
  ::close(*probe);
  return {};
}

/// A listening socket with SO_REUSEPORT, so each worker accepts on its own queue and a
/// second process (binary upgrade) can bind the same address.
ganglion::Result<int> openListenSocket(const HostPort& address) {
  auto fd = bindTcp(address, true);
  if (!fd) return fd;
  if (::listen(*fd, 4096) != 0) {
    int err = errno;
    ::close(*fd);
    return ganglion::Error{fmt::format("cannot listen on {}: {}", address.text(), std::strerror(err))};
  }
  return fd;
}

asio::awaitable<void> serveConnection(WorkerContext& ctx, tcp::socket socket, http::ListenerLimits limits,
                                      [[maybe_unused]] std::optional<net::IpConnectionLimit::Hold> hold) {
  try {
    http::ServerConnection conn(ctx.worker, std::move(socket), limits, ctx.requests.manager(), ctx.stats,
                                ctx.draining);
    co_await conn.run();
  } catch (const std::exception& e) {
    // An invariant broke while serving one connection; drop it, keep the worker.
    std::fprintf(stderr, "ganglion: worker %u: connection failed: %s\n", ctx.worker.index(), e.what());
  }
}

asio::awaitable<void> acceptLoop(WorkerContext& ctx, std::shared_ptr<WorkerListener> listener) {
  asio::steady_timer backoff(ctx.worker.io());
  for (;;) {
    auto [ec, socket] = co_await listener->acceptor.async_accept(kNoThrow);
    if (ec) {
      if (!listener->acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
      // Out of descriptors: pause accepting briefly instead of spinning.
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kNoThrow);
      continue;
    }
    std::optional<net::IpConnectionLimit::Hold> hold;
    if (const auto& cap = listener->limits.per_ip) {
      boost::system::error_code peer_ec;
      auto peer = socket.remote_endpoint(peer_ec);
      if (!peer_ec) hold = net::IpConnectionLimit::admit(cap, peer.address());
      if (!hold) {
        ctx.stats.connections_refused_per_ip.add();
        boost::system::error_code close_ec;
        socket.close(close_ec);
        continue;
      }
    }
    asio::co_spawn(ctx.worker.io(),
                   serveConnection(ctx, std::move(socket), listener->limits, std::move(hold)),
                   asio::detached);
  }
}

void raiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/// A snapshot's edge sections, kept alive by the snapshot.
std::shared_ptr<const edge::EdgeConfig> edgeOf(const std::shared_ptr<const Snapshot>& snapshot) {
  return std::shared_ptr<const edge::EdgeConfig>(snapshot, &snapshot->config.edge);
}

}  // namespace

Gateway::Gateway(std::string config_path, std::vector<std::string> argv)
    : config_path_(std::move(config_path)), argv_(std::move(argv)), signals_(io_) {}

void Gateway::upgradeBinary() {
  if (upgrading_ || draining_) return;
  SocketsByAddress sockets = listen_fds_;
  if (admin_ && admin_->nativeHandle() >= 0)
    sockets["admin|" + snapshot_->config.admin.address.text()] = {admin_->nativeHandle()};
  auto successor = spawnSuccessor(argv_, sockets);
  if (!successor) {
    log("binary upgrade failed: " + successor.error().message);
    return;
  }
  upgrading_ = true;
  log(fmt::format("binary upgrade: started pid {} with our listening sockets", successor->pid));
  struct Wait {
    asio::posix::stream_descriptor pipe;
    asio::steady_timer timer;
    char buf[16];
    Wait(asio::io_context& io, int fd) : pipe(io, fd), timer(io) {}
  };
  auto wait = std::make_shared<Wait>(io_, successor->ready_fd);
  pid_t pid = successor->pid;
  wait->timer.expires_after(std::chrono::seconds(30));
  wait->timer.async_wait([wait](const boost::system::error_code& ec) {
    if (!ec) wait->pipe.close();
  });
  wait->pipe.async_read_some(
      asio::buffer(wait->buf), [this, wait, pid](const boost::system::error_code& ec, size_t n) {
        wait->timer.cancel();
        if (!ec && n >= 5 && std::string_view(wait->buf, 5) == "ready") {
          log(fmt::format("binary upgrade: pid {} is serving; this process drains", pid));
          drainAndStop();
          return;
        }
        upgrading_ = false;
        int status = 0;
        ::waitpid(pid, &status, WNOHANG);
        log(fmt::format("binary upgrade: pid {} did not become ready; this process keeps serving", pid));
      });
}

Gateway::~Gateway() {
  for (auto& w : workers_) w->worker.stopAndJoin();
  // The edge's sinks hold timers of the workers' loops: gone before the loops are (the
  // threads are stopped, so no tick or delivery runs meanwhile).
  edge_.reset();
  if (access_log_) access_log_->stop();
}

void Gateway::log(std::string_view message) {
  std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  std::fprintf(stderr, "%s ganglion: %.*s\n", when, static_cast<int>(message.size()), message.data());
}

Result<void> Gateway::installListeners(const Config& cfg) {
  // Open every new socket first, so a bind failure changes nothing. Sockets handed down by
  // a parent (binary upgrade) are adopted instead of bound, so their queues carry over.
  std::map<std::string, const ListenerConfig*> wanted;
  for (const auto& l : cfg.listeners) wanted[l.address.text()] = &l;
  std::map<std::string, std::vector<int>> opened;
  for (const auto& [key, l] : wanted) {
    if (bound_.count(key)) continue;
    auto& fds = opened[key];
    if (auto it = inherited_.find(key); it != inherited_.end()) {
      fds = std::move(it->second);
      inherited_.erase(it);
    }
    if (fds.empty()) {
      if (auto busy = requireAddressFree(l->address); !busy) {
        for (auto& [k, list] : opened)
          for (int f : list) ::close(f);
        return Error(fmt::format("{}:{}: {}", cfg.source_path, l->at.line, busy.error().message));
      }
    }
    while (fds.size() < workers_.size()) {
      auto fd = openListenSocket(l->address);
      if (!fd) {
        for (auto& [k, list] : opened)
          for (int f : list) ::close(f);
        return Error(fmt::format("{}:{}: {}", cfg.source_path, l->at.line, fd.error().message));
      }
      fds.push_back(*fd);
    }
  }
  std::map<std::string, http::ListenerLimits> limits;
  for (const auto& [key, l] : wanted) limits[key] = limitsOf(*l);
  for (size_t i = 0; i < workers_.size(); ++i) {
    auto* ctx = workers_[i].get();
    // Main thread owns `listeners` only before the workers start; afterwards each change is
    // posted to the worker that owns the acceptor.
    std::vector<std::pair<std::string, int>> adds;
    for (auto& [key, fds] : opened)
      for (size_t j = i; j < fds.size(); j += workers_.size()) adds.emplace_back(key, fds[j]);
    auto apply = [ctx, adds, limits] {
      for (auto it = ctx->listeners.begin(); it != ctx->listeners.end();) {
        if (!limits.count(it->first)) {
          for (auto& l : it->second) {
            boost::system::error_code ec;
            l->acceptor.close(ec);
          }
          it = ctx->listeners.erase(it);
        } else {
          for (auto& l : it->second) l->limits = limits.at(it->first);
          ++it;
        }
      }
      for (const auto& [key, fd] : adds) {
        auto l = std::make_shared<WorkerListener>(ctx->worker.io(), limits.at(key));
        auto endpoint_protocol = tcp::v4();
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 && ss.ss_family == AF_INET6)
          endpoint_protocol = tcp::v6();
        l->acceptor.assign(endpoint_protocol, fd);
        ctx->listeners[key].push_back(l);
        asio::co_spawn(ctx->worker.io(), acceptLoop(*ctx, l), asio::detached);
      }
    };
    if (running_)
      ctx->worker.post(apply);
    else
      apply();
  }
  for (auto it = listen_fds_.begin(); it != listen_fds_.end();) {
    if (!wanted.count(it->first))
      it = listen_fds_.erase(it);  // closed by the workers
    else
      ++it;
  }
  for (auto& [key, fds] : opened) listen_fds_[key] = fds;
  bound_.clear();
  for (const auto& [key, l] : wanted) bound_.insert(key);
  return {};
}

asio::awaitable<std::pair<int, std::string>> Gateway::reload() {
  auto fail = [&](const std::vector<std::string>& errors) {
    ++reloads_failed_;
    boost::json::array list;
    for (auto& e : errors) {
      log("reload rejected: " + e);
      list.emplace_back(e);
    }
    boost::json::object body{{"error", boost::json::object{{"code", 400},
                                                           {"type", "invalid_config"},
                                                           {"message", errors.empty() ? "" : errors.front()},
                                                           {"details", std::move(list)}}}};
    return std::make_pair(400, boost::json::serialize(body) + "\n");
  };
  if (reloading_)  // the admin API is told; nothing is queued
    co_return std::make_pair(409, http::jsonErrorBody(409, "reload_in_progress",
                                                      "a reload is already running; try again when it ends"));
  reloading_ = true;
  // When it ends, a SIGHUP that came meanwhile starts the next one, from the loop (not from
  // here: this frame is still unwinding).
  struct Done {
    Gateway& gateway;
    ~Done() {
      gateway.reloading_ = false;
      if (!gateway.reload_again_) return;
      gateway.reload_again_ = false;
      asio::post(gateway.io_, [g = &gateway] { g->reloadOnSignal(); });
    }
  } done{*this};
  // Reading and parsing (a large config takes a while) and DNS off the main thread.
  // The blocking steps fill `job` through a plain pointer and return a bool: returning the
  // LoadResult itself, or a shared_ptr to a struct local to this coroutine, through
  // runBlocking crashed with a double free (GCC 12's coroutine code for this function).
  struct Job {
    std::string path;
    LoadResult loaded;
    ResolvedNames names;
    std::vector<ConfigError> unresolved;
  };
  auto job = std::make_unique<Job>();
  job->path = config_path_;
  Job* j = job.get();
  co_await loop::runBlocking([j] {
    j->loaded = loadConfigFile(j->path);
    return true;
  });
  std::vector<std::string> errors;
  for (auto& e : j->loaded.errors) errors.push_back(e.text());
  if (!j->loaded.config) co_return fail(errors);
  if (!(j->loaded.config->state == snapshot_->config.state))
    co_return fail({config_path_ + ": 'state' cannot change while the gateway runs; restart it to apply"});
  co_await loop::runBlocking([j] {
    j->names = resolveUpstreamNames(*j->loaded.config, j->unresolved);
    return true;
  });
  for (auto& e : j->unresolved) errors.push_back(e.text());
  if (!errors.empty()) co_return fail(errors);
  auto config = std::make_shared<Config>(std::move(*j->loaded.config));
  // Provider names keep the addresses already found (they resolve lazily, see buildSnapshot).
  ResolvedNames known = std::move(j->names);
  for (size_t i : snapshot_->provider_upstreams)
    for (const auto& t : snapshot_->upstreams[i].targets)
      if (!t.endpoints.empty()) known.emplace(t.key, t.endpoints);
  auto built = buildSnapshot(std::move(*config), version_ + 1, health_, known);
  for (auto& e : built.errors) errors.push_back(e.text());
  if (!built.snapshot) co_return fail(errors);
  if (edge_)
    if (auto endpoints = edge_->checkEndpoints(built.snapshot->config.edge); !endpoints)
      co_return fail({config_path_ + ":" + endpoints.error().message});
  if (auto installed = installListeners(built.snapshot->config); !installed)
    co_return fail({installed.error().message});
  if (built.snapshot->config.workers != snapshot_->config.workers)
    log("note: a new 'workers' value takes effect at the next start");
  install(built.snapshot);
  if (spend_store_) {  // keys added by this reload may have spend stored by an earlier run
    auto keys = snapshot_->config.keys;
    auto ok = co_await asio::co_spawn(
        *spend_strand_,
        [this, keys = std::move(keys)]() -> asio::awaitable<Result<void>> {
          co_return spend_store_->loadInto(ledger_, keys, std::chrono::system_clock::now());
        },
        asio::use_awaitable);
    if (!ok) log("state.sqlite: " + ok.error().message);
  }
  if (admin_ && snapshot_->config.admin.enabled) {
    admin_->setToken(snapshot_->config.admin.token);
    admin_->setConsole(snapshot_->config.admin.console);
  }
  if (access_log_) access_log_->setEnabled(snapshot_->config.access_log.enabled);
  ++reloads_ok_;
  resolvePending();
  log(fmt::format("config version {} loaded from {}", version_, config_path_));
  co_return std::make_pair(200, fmt::format("{{\"version\":{}}}\n", version_));
}

void Gateway::reloadOnSignal() {
  // During a reload (from a signal or the admin API) one more is queued: it starts when that
  // one ends. Spawning it now would only be refused, and retrying at once spun the main
  // thread without end (a second SIGHUP during a reload jammed the gateway).
  if (reloading_) {
    reload_again_ = true;
    return;
  }
  asio::co_spawn(
      io_, [this]() -> asio::awaitable<void> { co_await reload(); }, asio::detached);
}

void Gateway::install(std::shared_ptr<const Snapshot> snapshot) {
  snapshot_ = std::move(snapshot);
  target_health_metrics_.show({snapshot_, &snapshot_->upstreams});
  version_ = snapshot_->version;
  health_.retainOnly(snapshot_->upstreams);
  checker_->apply(snapshot_);
  for (auto& w : workers_) {
    auto* ctx = w.get();
    ctx->worker.post([ctx, snap = snapshot_] { ctx->requests.install(snap); });
  }
  // After the workers' installs are queued: sinks find their new upstreams there. A successor
  // still waiting for edge.data_dir installs the latest snapshot once it has it.
  if (edge_ && edge_->running()) {
    // A reload does not wait: the queues of a directory another process holds keep their
    // records in memory and say why (queue_error), as before.
    if (auto locked = lockEdgeDataDir(snapshot_->config, std::chrono::milliseconds(0)); !locked)
      log(fmt::format("edge: {}", locked.error().message));
    edge_->install(edgeOf(snapshot_), edgeDataDir(snapshot_->config));
  }
}

void Gateway::scheduleDnsRefresh() {
  if (!dns_timer_) dns_timer_ = std::make_unique<asio::steady_timer>(io_);
  std::chrono::milliseconds every = std::chrono::hours(24);
  boost::system::error_code ec;
  for (const auto& u : snapshot_->upstreams)
    for (const auto& t : u.config->targets)
      if (asio::ip::make_address(t.address.host, ec), ec) every = std::min(every, u.config->dns_refresh);
  dns_timer_->expires_after(every);
  dns_timer_->async_wait([this](const boost::system::error_code& e) {
    if (e || draining_) return;
    refreshDns();
    scheduleDnsRefresh();
  });
}

void Gateway::resolvePending() {
  for (const auto& up : snapshot_->upstreams)
    for (const auto& t : up.targets)
      if (t.endpoints.empty()) return refreshDns();
}

void Gateway::refreshDns() {
  if (dns_in_flight_) return;
  // Resolve every name asynchronously (Asio's resolver thread), so the main thread and its
  // admin API never wait on DNS; compare with what the workers use when all answers are in.
  struct Pending {
    ResolvedNames names;
    size_t outstanding = 0;
    bool failed = false;
    std::shared_ptr<asio::ip::tcp::resolver> resolver;
  };
  auto pending = std::make_shared<Pending>();
  pending->resolver = std::make_shared<asio::ip::tcp::resolver>(io_);
  auto current = snapshot_;
  std::set<std::string> seen;
  for (const auto& u : current->upstreams) {
    for (const auto& t : u.config->targets) {
      boost::system::error_code ec;
      asio::ip::make_address(t.address.host, ec);
      if (!ec || !seen.insert(t.address.text()).second) continue;
      ++pending->outstanding;
      pending->resolver->async_resolve(
          t.address.host, std::to_string(t.address.port),
          [this, pending, current, key = t.address.text()](const boost::system::error_code& ec,
                                                           asio::ip::tcp::resolver::results_type results) {
            if (ec || results.empty()) {
              log(fmt::format("dns refresh: cannot resolve {}: {}; keeping the old addresses", key,
                              ec ? ec.message() : "no address"));
              pending->failed = true;
            } else {
              for (const auto& r : results) pending->names[key].push_back(r.endpoint());
            }
            if (--pending->outstanding != 0) return;
            dns_in_flight_ = false;
            if (current != snapshot_ || draining_) return;  // a reload happened meanwhile
            bool changed = false;
            for (const auto& up : current->upstreams)
              for (const auto& t : up.targets)
                if (auto it = pending->names.find(t.key);
                    it != pending->names.end() && it->second != t.endpoints)
                  changed = true;
            if (!changed) return;
            // Names that failed keep their old addresses.
            for (const auto& up : current->upstreams)
              for (const auto& t : up.targets)
                if (!t.endpoints.empty()) pending->names.emplace(t.key, t.endpoints);
            auto built = buildSnapshot(Config(current->config), version_ + 1, health_, pending->names);
            if (!built.snapshot) return;
            install(built.snapshot);
            log(fmt::format("dns refresh: upstream addresses changed; config version {}", version_));
          });
    }
  }
  dns_in_flight_ = pending->outstanding > 0;
}

Result<void> Gateway::lockEdgeDataDir(const Config& cfg, std::chrono::milliseconds wait) {
  const auto& e = cfg.edge;
  if (e.connectors.empty() && e.pipelines.empty() && e.sinks.empty()) return {};
  const std::filesystem::path dir = edgeDataDir(cfg);
  if (data_dir_lock_.held() && data_dir_lock_.dir() == dir) return {};
  auto taken = edge::DataDirLock::take(dir, wait, [this](std::string_view m) { log(m); });
  if (!taken) return taken.error();
  data_dir_lock_ = std::move(*taken);
  return {};
}

std::filesystem::path Gateway::edgeDataDir(const Config& cfg) const {
  std::filesystem::path path(cfg.edge.settings.data_dir);
  if (path.is_relative()) path = std::filesystem::path(config_path_).parent_path() / path;
  return path;
}

Result<void> Gateway::openSpendStore(const Config& cfg) {
  bool budgets = false;
  for (const auto& k : cfg.keys) budgets = budgets || k.limits.budget;
  if (cfg.state.sqlite.empty()) {
    if (budgets && !cfg.state.redis)
      log("note: key budgets are kept in memory and restart at zero with the process; "
          "set state.sqlite (or state.redis) to keep them");
    return {};
  }
  std::filesystem::path path(cfg.state.sqlite);
  if (path.is_relative()) path = std::filesystem::path(config_path_).parent_path() / path;
  auto opened = llm::SpendStore::open(path.string());
  if (!opened) return Error("state.sqlite: " + opened.error().message);
  spend_store_ = std::move(*opened);
  spend_strand_.emplace(loop::blockingPool().get_executor());
  ledger_.persist();
  if (auto ok = spend_store_->loadInto(ledger_, cfg.keys, std::chrono::system_clock::now()); !ok)
    return Error("state.sqlite: " + ok.error().message);
  log(fmt::format("key spend kept in {}", path.string()));
  return {};
}

void Gateway::scheduleSpendFlush() {
  if (!spend_store_) return;
  if (!spend_timer_) spend_timer_ = std::make_unique<asio::steady_timer>(io_);
  spend_timer_->expires_after(std::chrono::seconds(1));
  spend_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    flushSpend();
    scheduleSpendFlush();
  });
}

void Gateway::flushSpend() {
  if (!spend_store_ || spend_flushing_) return;
  spend_flushing_ = true;
  asio::post(*spend_strand_, [this, store = spend_store_] {
    std::string moved = store->followFile(ledger_);  // the ledger is shared by threads: it locks
    auto flushed = store->flush(ledger_);
    std::string err = flushed ? std::string() : flushed.error().message;
    asio::post(io_, [this, moved = std::move(moved), err = std::move(err)] {
      spend_flushing_ = false;
      if (!moved.empty()) log("state.sqlite: " + moved);
      noteSpendFlush(err);
    });
  });
}

void Gateway::noteSpendFlush(const std::string& err) {
  if (err != spend_error_) {
    log(err.empty() ? "state.sqlite: writing spend again"
                    : "state.sqlite: cannot write spend (kept in memory, "
                      "retrying every second): " +
                          err);
    spend_error_ = err;
  }
}

boost::json::array Gateway::llmKeys(const Snapshot& snapshot) {
  const auto& cfg = snapshot.config;
  // With Redis, budgets are one spend for every gateway on it: read them all in one go.
  std::vector<std::pair<std::string, KeyLimits::Period>> budgeted;
  if (cfg.state.redis)
    for (const auto& k : cfg.keys)
      if (k.limits.budget) budgeted.emplace_back(k.name, k.limits.period);
  std::vector<Result<llm::KeyLedger::Totals>> shared;
  if (!budgeted.empty()) shared = llm::SharedLimits::readTotals(cfg.state, budgeted);
  size_t next_shared = 0;
  boost::json::array keys;
  for (const auto& k : cfg.keys) {
    if (!k.limits.any()) continue;
    auto totals = ledger_.totals(k.name, k.limits.period);
    boost::json::object o{{"name", k.name}};
    if (cfg.state.redis && k.limits.budget) {
      const auto& read = shared[next_shared++];
      if (read)
        totals = read.value();
      else
        o["error"] = read.error().message;
    }
    o["rpm"] = k.limits.rpm ? boost::json::value(k.limits.rpm) : boost::json::value(nullptr);
    o["tpm"] = k.limits.tpm ? boost::json::value(k.limits.tpm) : boost::json::value(nullptr);
    if (k.limits.budget) {
      o["budget_usd"] = llm::formatUsd(k.limits.budget);
      o["period"] = k.limits.period == KeyLimits::Period::kDay ? "day" : "month";
      o["spent_usd"] = llm::formatUsd(totals.spent);
      o["reserved_usd"] = llm::formatUsd(totals.reserved);
    }
    keys.push_back(std::move(o));
  }
  std::sort(keys.begin(), keys.end(), [](const boost::json::value& a, const boost::json::value& b) {
    return a.as_object().at("name").as_string() < b.as_object().at("name").as_string();
  });
  return keys;
}

std::string Gateway::metricsText() {
  std::vector<telemetry::WorkerStats*> stats;
  for (auto& w : workers_) stats.push_back(&w->stats);
  telemetry::ProcessInfo info{version_, reloads_ok_, reloads_failed_, start_time_};
  std::string out = telemetry::renderPrometheus(stats, info);
  for (const auto* source : metric_sources_) source->render(out);
  return out;
}

bool Gateway::ready() const { return running_ && !draining_; }

void Gateway::takeEdgeOnceReleased() {
  if (!edge_lock_timer_) edge_lock_timer_ = std::make_unique<asio::steady_timer>(io_);
  edge_lock_timer_->expires_after(std::chrono::milliseconds(50));
  edge_lock_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || draining_) return;
    const Config& cfg = snapshot_->config;
    auto locked = lockEdgeDataDir(cfg, std::chrono::milliseconds(0));
    if (!locked && locked.error().code == edge::DataDirLock::kInUse) return takeEdgeOnceReleased();
    if (!locked) log(fmt::format("edge: {}", locked.error().message));
    log(fmt::format("edge: {} let go of by the previous process: the edge starts",
                    edgeDataDir(cfg).string()));
    edge_->install(edgeOf(snapshot_), edgeDataDir(cfg));
  });
}

void Gateway::drainAndStop() {
  if (draining_) return;
  draining_ = true;
  if (edge_lock_timer_) edge_lock_timer_->cancel();
  log("draining: no new connections; finishing requests in flight");
  for (auto& w : workers_) {
    auto* ctx = w.get();
    ctx->worker.post([ctx] {
      ctx->draining = true;
      for (auto& [key, list] : ctx->listeners) {
        for (auto& l : list) {
          boost::system::error_code ec;
          l->acceptor.close(ec);
        }
      }
      ctx->listeners.clear();
      auto grace = loop::Clock::now() + std::chrono::seconds(1);
      for (auto& d : ctx->worker.deadlines()) {
        if (d.idle() == loop::Deadline::Idle::kIdle)
          d.expireNow();
        else if (d.idle() == loop::Deadline::Idle::kFresh)
          d.shortenTo(grace);
      }
    });
  }
  auto timer = std::make_shared<asio::steady_timer>(io_);
  auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
  auto poll = std::make_shared<std::function<void()>>();
  *poll = [this, timer, deadline, poll] {
    uint64_t active = 0;
    for (auto& w : workers_) active += w->stats.connections_active.get();
    if (active == 0 || std::chrono::steady_clock::now() >= deadline) {
      if (active) log(fmt::format("drain timeout: closing {} connections", active));
      // Open windows close, and sinks get a moment to deliver what waits (in memory only).
      if (edge_) edge_->drain(std::chrono::seconds(1));
      if (admin_) admin_->stop();
      checker_->stop();
      if (dns_timer_) dns_timer_->cancel();
      if (spend_timer_) spend_timer_->cancel();
      signals_.cancel();
      main_loop_.stop();
      *poll = nullptr;  // break the self-reference
      return;
    }
    timer->expires_after(std::chrono::milliseconds(20));
    timer->async_wait([poll](const boost::system::error_code& ec) {
      if (!ec && *poll) (*poll)();
    });
  };
  (*poll)();
}

int Gateway::run() {
  std::signal(SIGPIPE, SIG_IGN);
  raiseFileLimit();
  start_time_ = static_cast<double>(std::time(nullptr));
  inherited_ = takeInheritedSockets();
  auto loaded = loadConfigFile(config_path_);
  if (!loaded.config) {
    for (auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.text().c_str());
    return 1;
  }
  auto built = buildSnapshot(std::move(*loaded.config), 1, health_);
  if (!built.snapshot) {
    for (auto& e : built.errors) std::fprintf(stderr, "%s\n", e.text().c_str());
    return 1;
  }
  snapshot_ = built.snapshot;
  target_health_metrics_.show({snapshot_, &snapshot_->upstreams});
  version_ = 1;
  checker_ = std::make_unique<HealthChecker>(io_, [this](std::string_view m) { log(m); });
  checker_->apply(snapshot_);
  const Config& cfg = snapshot_->config;
  if (auto opened = openSpendStore(cfg); !opened) {
    std::fprintf(stderr, "%s: %s\n", config_path_.c_str(), opened.error().message.c_str());
    return 1;
  }
  access_log_ = std::make_unique<telemetry::AccessLog>(cfg.access_log.path, cfg.workers);
  access_log_->setEnabled(cfg.access_log.enabled);
  metric_sources_.push_back(access_log_.get());
  for (unsigned i = 0; i < cfg.workers; ++i) {
    workers_.push_back(std::make_unique<WorkerContext>(i, access_log_.get(), ledger_, llm_cache_));
    llm_metrics_.add(workers_.back()->requests.llmMetrics());
  }
  edge_host_ = std::make_unique<GatewayEdge>(workers_);
  edge_ = std::make_unique<edge::EdgeRuntime>(*edge_host_);
  metric_sources_.push_back(edge_.get());
  for (auto& w : workers_) {
    w->requests.setEdge(edge_.get());
    w->requests.install(snapshot_);
  }
  // A gateway still shutting down on the same data_dir has a few seconds to let go of it.
  // A directory that cannot be used at all is not a reason to refuse: its queues keep their
  // records in memory and say why, as they do when it fails later. A binary upgrade's
  // successor serves at once and takes the edge over once the old process, which drains as
  // soon as this one is ready, has let go of it.
  const bool successor = startedByUpgrade();
  bool edge_waits = false;  // for the old process to let go of edge.data_dir
  if (auto locked = lockEdgeDataDir(cfg, successor ? std::chrono::seconds(0) : std::chrono::seconds(5));
      !locked) {
    if (locked.error().code != edge::DataDirLock::kInUse) {
      log(fmt::format("edge: {}", locked.error().message));
    } else if (successor) {
      edge_waits = true;
      log(
          fmt::format("edge: waiting for the previous process to let go of {} (it drains first); ingest "
                      "answers 503 with Retry-After: 1 meanwhile",
                      edgeDataDir(cfg).string()));
    } else {
      std::fprintf(stderr, "%s: edge.data_dir: %s\n", config_path_.c_str(), locked.error().message.c_str());
      return 1;
    }
  }
  if (!edge_waits) edge_->install(edgeOf(snapshot_), edgeDataDir(cfg));
  if (auto installed = installListeners(cfg); !installed) {
    std::fprintf(stderr, "%s\n", installed.error().message.c_str());
    return 1;
  }
  if (cfg.admin.enabled) {
    admin_ = std::make_unique<admin::AdminServer>(
        main_loop_, admin::AdminApi{
                        .ready = [this] { return ready(); },
                        .metrics = [this] { return metricsText(); },
                        .config_json = [this] { return configToRedactedJson(snapshot_->config); },
                        .reload = [this] { return reload(); },
                        .llm_keys = [this]() -> asio::awaitable<boost::json::array> {
                          // This version's keys, whatever a reload does meanwhile. The lambda
                          // handed to the pool holds a plain pointer: g++ 12 destroys a
                          // temporary of a co_await expression twice, and a captured
                          // shared_ptr would lose two references (a use after free).
                          const std::shared_ptr<const Snapshot> held = snapshot_;
                          const Snapshot* snapshot = held.get();
                          if (!snapshot->config.state.redis) co_return llmKeys(*snapshot);
                          boost::json::array keys =
                              co_await loop::runBlocking([this, snapshot] { return llmKeys(*snapshot); });
                          co_return keys;
                        },
                        .edge_status = [this] { return edge_->status(); },
                        .edge_stop = [this](std::string_view part, std::string_view name,
                                            bool stop) { return edge_->setStopped(part, name, stop); },
                        .edge_records =
                            [this](std::string sink, std::string query) {
                              return edge_->sinkRecords(std::move(sink), std::move(query));
                            },
                        .check_config =
                            {
                                .json =
                                    [](const boost::json::value& body) {
                                      auto errors = loadConfigJson(body, "request body").errors;
                                      ::malloc_trim(0);  // a large config's tree goes back to the system
                                      return errors;
                                    },
                                .yaml =
                                    [](const std::string& body) {
                                      auto errors =
                                          loadConfigText(body, "request body", /*expand_env=*/false).errors;
                                      ::malloc_trim(0);
                                      return errors;
                                    },
                            },
                    });
    int admin_fd = -1;
    if (auto it = inherited_.find("admin|" + cfg.admin.address.text());
        it != inherited_.end() && !it->second.empty()) {
      admin_fd = it->second.front();
      inherited_.erase(it);
    }
    if (auto started = admin_->start(cfg.admin.address, cfg.admin.token, admin_fd); !started) {
      std::fprintf(stderr, "%s\n", started.error().message.c_str());
      return 1;
    }
    admin_->setConsole(cfg.admin.console);
    if (cfg.admin.remote)
      log(fmt::format(
          "WARNING: the admin API on {} is reachable beyond this host in clear text: its token and "
          "everything it shows cross the network unencrypted. Reach it through an SSH tunnel or a "
          "TLS-terminating proxy, or keep it on loopback.",
          cfg.admin.address.text()));
  }
  signals_.add(SIGHUP);
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGUSR2);
  std::function<void()> wait_signal = [this, &wait_signal] {
    signals_.async_wait([this, &wait_signal](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        reloadOnSignal();
        wait_signal();
      } else if (sig == SIGUSR2) {
        upgradeBinary();
        wait_signal();
      } else {
        drainAndStop();
      }
    });
  };
  wait_signal();
  if (edge_waits) takeEdgeOnceReleased();
  scheduleDnsRefresh();
  scheduleSpendFlush();
  resolvePending();
  for (auto& w : workers_) w->worker.start();
  running_ = true;
  for (auto& [key, fds] : inherited_)  // sockets for addresses no longer configured
    for (int fd : fds) ::close(fd);
  inherited_.clear();
  signalReadyToParent();
  std::string addresses;
  for (auto& l : cfg.listeners) fmt::format_to(std::back_inserter(addresses), " {}", l.address.text());
  log(fmt::format(
      "version {} serving on{} with {} worker(s){}", GANGLION_VERSION, addresses, cfg.workers,
      cfg.admin.enabled ? fmt::format(", admin on {}", cfg.admin.address.text()) : std::string()));
  if (!cfg.skipped_providers.empty())
    log(fmt::format(
        "optional providers left out (their api_key is empty): {}; {} model(s) with no other target "
        "left out too",
        fmt::join(cfg.skipped_providers, ", "), cfg.skipped_models.size()));
  main_loop_.runHere();
  if (admin_) {  // its connections end before it goes
    admin_->stop();
    main_loop_.finish([this] { return admin_->connections() > 0; }, std::chrono::milliseconds(500));
  }
  for (auto& w : workers_) w->worker.stopAndJoin();
  if (spend_store_) {  // the workers are gone: every call has settled; after any flush in flight
    auto last = onSpendStrand([&] {
      if (auto moved = spend_store_->followFile(ledger_); !moved.empty()) logLine("state.sqlite: " + moved);
      return spend_store_->flush(ledger_);
    });
    // Said even when the same error was logged before: this spend is now lost.
    if (!last)
      log("state.sqlite: the spend since the last write is lost (cannot write it at exit): " +
          last.error().message);
  }
  access_log_->stop();
  log("stopped");
  return 0;
}

}  // namespace ganglion::server
