// The upstream targets' health as metric families: ganglion_upstream_target_up (1 while the
// target takes traffic: health checks pass and it is not ejected) and
// ganglion_upstream_target_ejections_total, for the upstreams of the current snapshot.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "telemetry/metrics.h"
#include "upstream/resolved_upstream.h"

namespace ganglion::upstream {

/// Main thread: show() at each snapshot install, render() at each scrape; the health it reads
/// is written by workers and the health checker (atomics).
class TargetHealthMetrics final : public telemetry::MetricsSource {
 public:
  /// The upstreams to render from now on (kept alive by the pointer: an aliasing pointer into
  /// the snapshot that holds them).
  void show(std::shared_ptr<const std::vector<ResolvedUpstream>> upstreams) {
    upstreams_ = std::move(upstreams);
  }
  void render(std::string& out) const override;

 private:
  std::shared_ptr<const std::vector<ResolvedUpstream>> upstreams_;
};

}  // namespace ganglion::upstream
