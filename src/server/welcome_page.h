// The page a `welcome: {}` route answers with: what this gateway is configured to do and how
// to go on (the first run of `scripts/run.sh` shows it at /). Built once per config snapshot.
#pragma once

#include <string>

#include "config/config.h"
#include "server/gateway_config.h"

namespace ganglion::server {

/// Plain text (readable in a browser and in curl). Names listeners, routes, the LLM API with
/// its providers and models (or how to switch them on), gateway keys by name only, and the
/// admin API; never a secret. Main thread, at snapshot build.
std::string renderWelcomePage(const Config& config);

}  // namespace ganglion::server
