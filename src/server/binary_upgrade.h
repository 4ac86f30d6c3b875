// Binary upgrade without refusing a connection (as nginx's USR2): the running gateway starts
// its successor with the listening sockets themselves (not copies of the addresses), so the
// kernel queues carry over; once the successor says it is ready, the old process drains.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"

namespace ganglion::server {

using SocketsByAddress = std::map<std::string, std::vector<int>>;

/// In a successor: the sockets the parent handed down, by address (removes the variable so
/// a later upgrade starts clean). Main thread, at start.
SocketsByAddress takeInheritedSockets();

struct Successor {
  pid_t pid = -1;
  int ready_fd = -1;  ///< read end: "ready\n" arrives when the successor serves
};

/// Starts `argv` again (this executable, via /proc/self/exe) handing down `sockets`.
Result<Successor> spawnSuccessor(const std::vector<std::string>& argv, const SocketsByAddress& sockets);

/// Whether this process is a successor a binary upgrade started (its parent waits for
/// signalReadyToParent()). Main thread, before signalReadyToParent().
bool startedByUpgrade();

/// In a successor: tells the parent it is serving. No-op when not started by an upgrade.
void signalReadyToParent();

}  // namespace ganglion::server
