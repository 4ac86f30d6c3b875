#include "loop/worker.h"

#include <pthread.h>

#include <string>

namespace ganglion::loop {

Worker::Worker(unsigned index)
    : index_(index), guard_(boost::asio::make_work_guard(io_)), sweep_timer_(io_) {}

Worker::~Worker() { stopAndJoin(); }

void Worker::start() {
  thread_ = std::thread([this] {
    std::string name = "ganglion-w" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.c_str());
    scheduleSweep();
    io_.run();
  });
}

void Worker::runHere() {
  scheduleSweep();
  io_.run();
}

void Worker::stop() {
  guard_.reset();
  sweep_timer_.cancel();
  io_.stop();
}

void Worker::finish(const std::function<bool()>& pending, std::chrono::milliseconds limit) {
  const auto until = Clock::now() + limit;
  io_.restart();
  while (pending() && Clock::now() < until) io_.run_one_for(std::chrono::milliseconds(10));
}

void Worker::stopAndJoin() {
  if (!thread_.joinable()) return;
  guard_.reset();
  io_.stop();
  thread_.join();
}

void Worker::scheduleSweep() {
  sweep_timer_.expires_after(std::chrono::milliseconds(100));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    auto now = Clock::now();
    // check() may unlink the deadline being visited (a connection closing), so step first.
    for (auto it = deadlines_.begin(); it != deadlines_.end();) {
      Deadline& d = *it++;
      d.check(now);
    }
    for (auto& hook : tick_hooks_) hook();
    scheduleSweep();
  });
}

}  // namespace ganglion::loop
