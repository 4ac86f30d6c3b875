#include "upstream/target_health_metrics.h"

#include <fmt/format.h>

namespace ganglion::upstream {

void TargetHealthMetrics::render(std::string& out) const {
  telemetry::appendFamilyHead(out, "ganglion_upstream_target_up", "gauge",
                              "1 when the target takes traffic (health checks pass, not ejected).");
  std::string ejections;
  telemetry::appendFamilyHead(ejections, "ganglion_upstream_target_ejections_total", "counter",
                              "Times the target was ejected by outlier detection.");
  if (upstreams_) {
    const int64_t now_ms = steadyMillis();
    for (const auto& up : *upstreams_) {
      const std::string name = telemetry::labelValue(up.config->name);
      for (const auto& t : up.targets) {
        const std::string target = telemetry::labelValue(t.key);
        out += fmt::format("ganglion_upstream_target_up{{upstream=\"{}\",target=\"{}\"}} {}\n", name, target,
                           t.health->available(now_ms) ? 1 : 0);
        ejections +=
            fmt::format("ganglion_upstream_target_ejections_total{{upstream=\"{}\",target=\"{}\"}} {}\n",
                        name, target, t.health->ejections_total.load());
      }
    }
  }
  out += ejections;
}

}  // namespace ganglion::upstream
