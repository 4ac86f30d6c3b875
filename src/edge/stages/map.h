// `map: { value: "value * 0.1", metric: flow_m3h, unit: m3/h, set: { band: "..." }, when: "..." }`:
// rewrites readings and other records in place: a computed value, a renamed metric, a unit,
// computed attributes. Records for which `when` is not true pass through unchanged.
//
// Every expression of one map sees the record as it came in (a `set` entry reads the old
// value, not the new one). A computed value that is null (a missing field, a division by
// zero) leaves the record without a value: later windows count it as `no_value`. Computed
// attributes go into the record's `attrs` (`attrs.<name>` in later expressions, `attrs` on the
// wire); a null result removes the attribute.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "edge/expr/expr.h"
#include "edge/stages/stage.h"

namespace ganglion::edge {

struct MapSpec {
  std::string when;                                      ///< condition ("": every record)
  std::string value;                                     ///< expression of the new value ("": unchanged)
  std::string metric;                                    ///< the new metric name ("": unchanged)
  std::string unit;                                      ///< sets attrs.unit ("": unchanged)
  std::vector<std::pair<std::string, std::string>> set;  ///< attribute name → expression
};

class MapStage final : public Stage {
 public:
  struct Compiled {
    std::optional<expr::Program> when;
    std::optional<expr::Program> value;
    StringId metric = StringPool::kNotFound;  ///< interned in the pipeline's series strings
    std::string unit;
    std::vector<std::pair<std::string, expr::Program>> set;
  };
  MapStage(Compiled compiled, FieldId attrs_field);
  void process(Batch& batch, StageContext& ctx) override;
  std::string_view kind() const override { return "map"; }
  void keepSeries(std::vector<uint8_t>& keep) const override { keepMadeSeries(renamed_, keep); }
  void forgetSeries(const Forgetting& f) override { forgetMadeSeries(renamed_, f); }

 private:
  /// The series of `series` with the metric renamed (kNoSeries: the table is full).
  SeriesId renamed(SeriesId series, SeriesTable& table);
  /// Rewrites the attributes of `batch.records[i]` (its fields move to the arena's end).
  void rewriteAttrs(Batch& batch, size_t i, StageContext& ctx);

  Compiled c_;
  FieldId attrs_field_;
  std::vector<SeriesId> renamed_;  // SeriesId → its renamed series (kNoSeries: not yet)
  std::string attrs_;              // the rewritten attributes, built here before they join the arena
  std::vector<Field> fields_;      // the record's fields, copied while the arena grows
};

}  // namespace ganglion::edge
