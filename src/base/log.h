// The gateway's diagnostic log (stderr): one timestamped line per event, safe from any thread.
// Details the clients must not see (internal addresses, provider error bodies) go here.
#pragma once

#include <string_view>

namespace ganglion {

/// Writes "<UTC time> ganglion: <message>" as one line. Any thread. Each thread writes at most
/// 50 lines a second (an outage must not flood the log or slow the workers); what it drops is
/// counted and reported with its next line.
void logLine(std::string_view message);

}  // namespace ganglion
