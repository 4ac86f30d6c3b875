// The `upstreams[]` section and its nested maps, declared once (config/schema.h); `tls` is
// read apart (net/tls_config.h). Main thread, or the blocking pool for /config/check.
#pragma once

#include "config/schema.h"
#include "upstream/upstream_config.h"

namespace ganglion::upstream {

const config::Schema<UpstreamConfig>& upstreamSchema();
const config::Schema<TargetConfig>& targetSchema();
const config::Schema<HealthCheckConfig>& healthCheckSchema();
const config::Schema<OutlierConfig>& outlierSchema();
const config::Schema<RetryBudgetConfig>& retryBudgetSchema();

}  // namespace ganglion::upstream
