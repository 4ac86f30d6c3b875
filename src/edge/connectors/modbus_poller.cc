#include "edge/connectors/modbus_poller.h"

#include <fmt/format.h>
#include <modbus.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cmath>

#include "base/log.h"
#include "base/time.h"
#include "edge/edge_runtime.h"
#include "edge/expr/expr.h"

namespace ganglion::edge {

namespace json = boost::json;

namespace {

bool isException(int err) { return err > MODBUS_ENOBASE && err < MODBUS_ENOBASE + 12; }

/// An error after which the link must be made again (the peer went away).
bool isLinkError(int err) {
  return err == ECONNRESET || err == EPIPE || err == EBADF || err == ENOTCONN || err == ECONNREFUSED ||
         err == EIO;
}

}  // namespace

/// libmodbus's context, closed and freed with its owner.
struct ModbusPoller::Context {
  ModbusPoller* owner = nullptr;
  modbus_t* ctx = nullptr;
  ~Context() {
    if (ctx) {
      owner->closeLink(*this);
      modbus_free(ctx);
    }
  }
};

void ModbusPoller::closeLink(Context& c) {
  std::lock_guard lock(mutex_);  // stop() never shuts down a number the next socket may reuse
  socket_ = -1;
  modbus_close(c.ctx);
}

bool ModbusPoller::connectTcp(Context& c) {
  using Clock = std::chrono::steady_clock;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(config_.address.port);
  if (const int rc = ::getaddrinfo(config_.address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    errno = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
    return false;
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  int err = ECONNREFUSED;
  for (const addrinfo* a = found; a; a = a->ai_next) {
    // Non-blocking, as libmodbus keeps its own sockets (it waits in select() before reading).
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        ::close(fd);
        errno = ECANCELED;
        return false;
      }
      socket_ = fd;  // stop() shuts it down: a connect in progress ends at once
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    err = rc == 0 ? 0 : errno;
    const auto deadline = Clock::now() + config_.timeout;
    while (err == EINPROGRESS) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        err = ETIMEDOUT;
        break;
      }
      pollfd p{fd, POLLOUT, 0};
      // In slices: a stop is seen within one even if the shutdown did not wake the poll.
      rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)));
      if (rc < 0 && errno != EINTR) {
        err = errno;
      } else if (rc > 0) {
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
      std::lock_guard lock(mutex_);
      if (stopping_) err = ECANCELED;
    }
    if (err == 0) {
      modbus_set_socket(c.ctx, fd);  // libmodbus closes it (modbus_close)
      return true;
    }
    {
      std::lock_guard lock(mutex_);
      socket_ = -1;
    }
    ::close(fd);
    if (err == ECANCELED) break;
  }
  errno = err;
  return false;
}

ModbusPoller::ModbusPoller(EdgeRuntime& runtime, ConnectorConfig config, std::shared_ptr<ModbusStats> stats)
    : runtime_(runtime), config_(std::move(config)), fingerprint_(connectorFingerprint(config_)) {
  if (!stats || stats->registers.size() != config_.registers.size()) {
    stats = std::make_shared<ModbusStats>();
    stats->registers.resize(config_.registers.size());
  }
  stats_ = std::move(stats);
}

ModbusPoller::~ModbusPoller() {
  stop();
  join();
}

void ModbusPoller::start() {
  thread_ = std::thread([this] {
    run();
    exited_.store(true, std::memory_order_release);
  });
}

void ModbusPoller::stop() {
  std::deque<PendingWrite> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    left.swap(writes_);  // the poll thread makes none of them now
    // A read waiting on a silent device ends now, not at its timeout (which may be a minute):
    // shutdown, stop and reload never wait on it.
    if (socket_ >= 0) ::shutdown(socket_, SHUT_RDWR);
  }
  wake_.notify_all();
  for (auto& w : left) {
    const ModbusRegister& reg = config_.registers[w.index];
    stats_->registers[w.index].write_failures.fetch_add(1, std::memory_order_relaxed);
    if (w.done)
      w.done(fmt::format("writing register '{}' ({} {}): not made: the connector stopped", reg.name,
                         modbusTableName(reg.table), reg.address));
  }
}

void ModbusPoller::join() {
  if (thread_.joinable()) thread_.join();
}

bool ModbusPoller::sleepUntil(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  wake_.wait_until(lock, deadline, [this] { return stopping_ || !writes_.empty(); });
  return !stopping_;
}

bool ModbusPoller::write(size_t index, double value, std::function<void(std::string)> done) {
  if (index >= config_.registers.size() || !config_.registers[index].writable) return false;
  PendingWrite dropped{0, 0, nullptr};
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    if (writes_.size() >= kMaxPendingWrites) {
      // The newest value is the one that counts (a setpoint): the oldest waiting write gives way.
      dropped = std::move(writes_.front());
      writes_.pop_front();
    }
    writes_.push_back({index, value, std::move(done)});
  }
  wake_.notify_all();
  if (dropped.done) {
    const ModbusRegister& reg = config_.registers[dropped.index];
    stats_->registers[dropped.index].write_failures.fetch_add(1, std::memory_order_relaxed);
    dropped.done(
        fmt::format("writing register '{}' ({} {}): not made: more than {} writes waited and "
                    "newer ones came",
                    reg.name, modbusTableName(reg.table), reg.address, kMaxPendingWrites));
  }
  return true;
}

bool ModbusPoller::applyWrites(Context& c, bool connected, const std::string& where) {
  while (true) {
    PendingWrite w;
    {
      std::lock_guard lock(mutex_);
      if (writes_.empty() || stopping_) return true;
      w = std::move(writes_.front());
      writes_.pop_front();
    }
    const ModbusRegister& reg = config_.registers[w.index];
    ModbusStats::Register& rs = stats_->registers[w.index];
    auto fail = [&](std::string why) {
      rs.write_failures.fetch_add(1, std::memory_order_relaxed);
      if (w.done)
        w.done(fmt::format("writing register '{}' ({} {}) of {}: {}", reg.name, modbusTableName(reg.table),
                           reg.address, where, why));
    };
    if (!connected) {
      fail("not connected");  // a setpoint written late may do harm: not kept for later
      continue;
    }
    double raw = (w.value - reg.offset) / reg.scale;
    if (reg.table == ModbusTable::kCoil && raw != 0 && raw != 1) {
      fail(fmt::format("{} does not fit a coil (0 or 1, false or true)", w.value));
      continue;
    }
    if (reg.layout.type != RegisterType::kFloat32 && reg.layout.type != RegisterType::kFloat64)
      raw = std::round(raw);  // to the register's resolution
    uint16_t regs[4] = {0, 0, 0, 0};
    int rc;
    if (reg.table == ModbusTable::kCoil) {
      rc = modbus_write_bit(c.ctx, static_cast<int>(reg.address), raw != 0 ? 1 : 0);
    } else {
      const int width = registerWidth(reg.layout.type);
      if (!std::isfinite(raw) ||
          !encodeRegisters(raw, reg.layout, std::span<uint16_t>(regs, static_cast<size_t>(width)))) {
        fail(fmt::format("{} does not fit a {} register", w.value, registerTypeName(reg.layout.type)));
        continue;
      }
      rc = width == 1 ? modbus_write_register(c.ctx, static_cast<int>(reg.address), regs[0])
                      : modbus_write_registers(c.ctx, static_cast<int>(reg.address), width, regs);
    }
    if (rc == -1) {
      const int err = errno;
      fail(err == ETIMEDOUT ? std::string("no answer in time") : std::string(modbus_strerror(err)));
      if (!isException(err) && (config_.kind == "modbus_tcp" || isLinkError(err))) return false;
      if (!isException(err)) modbus_flush(c.ctx);
      continue;
    }
    rs.writes.fetch_add(1, std::memory_order_relaxed);
    if (w.done) w.done("");
  }
}

void ModbusPoller::noteError(std::string what) {
  std::lock_guard lock(stats_->error_mutex);
  if (stats_->last_error == what) return;  // said once until something else happens
  error_log_.log(fmt::format("edge: modbus connector '{}': {}", config_.name, what));
  stats_->last_error = std::move(what);
}

void ModbusPoller::run() {
  using Clock = std::chrono::steady_clock;
  Context c;
  c.owner = this;
  const bool tcp = config_.kind == "modbus_tcp";
  const std::string where =
      tcp ? fmt::format("{}:{}", config_.address.host, config_.address.port) : config_.serial_port;
  if (tcp) {
    const std::string port = std::to_string(config_.address.port);
    c.ctx = modbus_new_tcp_pi(config_.address.host.c_str(), port.c_str());
  } else {
    const char parity = config_.parity == "even" ? 'E' : config_.parity == "odd" ? 'O' : 'N';
    c.ctx = modbus_new_rtu(config_.serial_port.c_str(), static_cast<int>(config_.baud), parity,
                           static_cast<int>(config_.data_bits), static_cast<int>(config_.stop_bits));
  }
  if (!c.ctx) return noteError(fmt::format("cannot set up {}: {}", where, modbus_strerror(errno)));
  modbus_set_slave(c.ctx, static_cast<int>(config_.unit_id));
  const auto timeout_us = static_cast<uint64_t>(config_.timeout.count()) * 1000;
  modbus_set_response_timeout(c.ctx, static_cast<uint32_t>(timeout_us / 1'000'000),
                              static_cast<uint32_t>(timeout_us % 1'000'000));
  // libmodbus bounds the gap between two bytes of an answer, not the whole answer: keep it
  // short, so that a device trickling its answers is not waited on for many timeouts.
  const uint64_t byte_us = std::clamp<uint64_t>(timeout_us / 4, 20'000, 500'000);
  modbus_set_byte_timeout(c.ctx, 0, static_cast<uint32_t>(byte_us));
  bool connected = false;
  uint32_t failures = 0;
  auto next = Clock::now();
  uint16_t regs[4];
  uint8_t bits[1];
  while (true) {
    if (!connected) {
      if (tcp ? !connectTcp(c) : modbus_connect(c.ctx) == -1) {
        if (errno == ECANCELED) return;  // stopped while connecting
        stats_->connect_failures.fetch_add(1, std::memory_order_relaxed);
        noteError(fmt::format("cannot connect to {}: {}", where, modbus_strerror(errno)));
        const int64_t pause =
            doublingBackoffMs(config_.reconnect.initial.count(), config_.reconnect.max.count(), ++failures);
        // Writes asked for meanwhile fail at once ("not connected") and do not cut the pause.
        const auto until = Clock::now() + std::chrono::milliseconds(pause);
        do {
          applyWrites(c, false, where);
          if (!sleepUntil(until)) return;
        } while (Clock::now() < until);
        continue;
      }
      {
        std::lock_guard lock(mutex_);  // stopped meanwhile: its stopper says "not connected"
        if (stopping_) return;
        stats_->connected.store(true);  // under the lock: never after the stopper's false
      }
      connected = true;
      failures = 0;
    }
    auto readings = std::make_shared<IncomingReadings>();
    readings->connector = config_.name;
    size_t refused = 0;
    bool lost = false;
    bool clean = true;
    for (size_t i = 0; i < config_.registers.size() && !lost; ++i) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;  // a silent device must not hold a stop for the whole round
      }
      const ModbusRegister& reg = config_.registers[i];
      ModbusStats::Register& rs = stats_->registers[i];
      const int width = registerWidth(reg.layout.type);
      int rc = -1;
      switch (reg.table) {
        case ModbusTable::kHolding:
          rc = modbus_read_registers(c.ctx, static_cast<int>(reg.address), width, regs);
          break;
        case ModbusTable::kInput:
          rc = modbus_read_input_registers(c.ctx, static_cast<int>(reg.address), width, regs);
          break;
        case ModbusTable::kCoil:
          rc = modbus_read_bits(c.ctx, static_cast<int>(reg.address), 1, bits);
          regs[0] = bits[0];
          break;
        case ModbusTable::kDiscrete:
          rc = modbus_read_input_bits(c.ctx, static_cast<int>(reg.address), 1, bits);
          regs[0] = bits[0];
          break;
      }
      if (rc == -1) {
        const int err = errno;
        {
          std::lock_guard lock(mutex_);
          if (stopping_) return;  // cut short by stop() (its socket shut down): not the device's failure
        }
        clean = false;
        if (isException(err)) {
          rs.exceptions.fetch_add(1, std::memory_order_relaxed);
          rs.last_exception.store(err - MODBUS_ENOBASE, std::memory_order_relaxed);
          noteError(fmt::format("register '{}' ({} {}): {}", reg.name, modbusTableName(reg.table),
                                reg.address, modbus_strerror(err)));
        } else {
          (err == ETIMEDOUT ? rs.timeouts : rs.bad_answers).fetch_add(1, std::memory_order_relaxed);
          noteError(fmt::format(
              "register '{}' ({} {}): {}", reg.name, modbusTableName(reg.table), reg.address,
              err == ETIMEDOUT ? std::string("no answer in time") : std::string(modbus_strerror(err))));
          // After a timeout or a bad answer the link is out of step (a late answer would be
          // read as the next request's): Modbus TCP connects again at once; RTU drops what
          // the line still holds.
          if (tcp || isLinkError(err))
            lost = true;
          else
            modbus_flush(c.ctx);
        }
        continue;
      }
      const double value =
          decodeRegisters(std::span<const uint16_t>(regs, static_cast<size_t>(width)), reg.layout) *
              reg.scale +
          reg.offset;
      if (!std::isfinite(value)) {
        rs.refused.fetch_add(1, std::memory_order_relaxed);
        ++refused;
        continue;
      }
      rs.reads.fetch_add(1, std::memory_order_relaxed);
      std::string attrs;
      if (!reg.unit.empty()) expr::appendAttr(attrs, "unit", reg.unit, false);
      readings->add(DecodedReading{config_.device, reg.name, wallMillis(), value, Quality::kGood, attrs});
    }
    stats_->polls.fetch_add(1, std::memory_order_relaxed);
    if (clean && !lost) {
      std::lock_guard lock(stats_->error_mutex);
      stats_->last_error.clear();  // a whole clean round: what failed before is over
    }
    if (lost) {
      closeLink(c);
      connected = false;
      stats_->connected.store(false);
    }
    const size_t accepted = readings->items.size();
    if (accepted) {
      // The pipelines are full: the next poll waits (backpressure slows the polls).
      const auto waited_from = Clock::now();
      while (runtime_.deliver(config_.name, readings) < 0) {
        if (!sleepUntil(Clock::now() + std::chrono::milliseconds(20))) return;
      }
      const auto waited =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - waited_from).count();
      if (waited > 1)
        stats_->backpressure_ms.fetch_add(static_cast<uint64_t>(waited), std::memory_order_relaxed);
    }
    runtime_.countIngest(config_.name, accepted, refused, accepted == 0 ? 1 : 0);
    next += config_.poll;
    const auto now = Clock::now();
    if (next < now) {  // reads took longer than the period: skip, never queue polls
      const auto behind = (now - next) / config_.poll + 1;
      stats_->skipped_polls.fetch_add(static_cast<uint64_t>(behind), std::memory_order_relaxed);
      next += behind * config_.poll;
    }
    // Until the next poll: writes the rules ask for are made as they come.
    while (true) {
      if (!sleepUntil(next)) return;
      if (!applyWrites(c, connected, where)) {
        closeLink(c);
        connected = false;
        stats_->connected.store(false);
      }
      if (Clock::now() >= next) break;
    }
  }
}

void ModbusPoller::describe(json::object& out) const {
  const ModbusStats& s = *stats_;
  out["address"] = config_.kind == "modbus_tcp" ? config_.address.text() : config_.serial_port;
  out["unit_id"] = config_.unit_id;
  out["connected"] = s.connected.load();
  out["polls"] = s.polls.load();
  out["skipped_polls"] = s.skipped_polls.load();
  out["connect_failures"] = s.connect_failures.load();
  out["backpressure_ms"] = s.backpressure_ms.load();
  json::array regs;
  for (size_t i = 0; i < config_.registers.size() && i < s.registers.size(); ++i) {
    const auto& r = s.registers[i];
    json::object o;
    o["name"] = config_.registers[i].name;
    o["reads"] = r.reads.load();
    o["timeouts"] = r.timeouts.load();
    o["bad_answers"] = r.bad_answers.load();
    o["exceptions"] = r.exceptions.load();
    o["refused"] = r.refused.load();
    if (config_.registers[i].writable) {
      o["writes"] = r.writes.load();
      o["write_failures"] = r.write_failures.load();
    }
    if (const int e = r.last_exception.load()) o["last_exception"] = e;
    regs.push_back(std::move(o));
  }
  out["registers"] = std::move(regs);
  std::lock_guard lock(s.error_mutex);
  if (!s.last_error.empty()) out["last_error"] = s.last_error;
}

}  // namespace ganglion::edge
