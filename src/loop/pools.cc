#include "loop/pools.h"

#include <sched.h>

#include <algorithm>
#include <thread>

namespace ganglion::loop {

boost::asio::thread_pool& blockingPool() {
  static boost::asio::thread_pool pool(2);
  return pool;
}

namespace {

/// The CPUs this process may run on (taskset, cgroup cpusets), else the machine's.
unsigned usableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(std::max(1, CPU_COUNT(&set)));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

boost::asio::thread_pool& computePool() {
  static boost::asio::thread_pool pool(usableCpus());
  return pool;
}

}  // namespace ganglion::loop
