#include "loop/blocking_pool.h"

namespace ganglion::loop {

boost::asio::thread_pool& blockingPool() {
  static boost::asio::thread_pool pool(2);
  return pool;
}

}  // namespace ganglion::loop
