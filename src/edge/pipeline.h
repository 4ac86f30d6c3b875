// A pipeline: its stages in order, its series table, its origins (the sources and stages whose
// names make record ids), and the loop that runs a batch through the stages to the output.
// Built at config load (main thread); afterwards it belongs to one worker and every call is
// on that worker.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "base/result.h"
#include "edge/detect/detector.h"
#include "edge/expr/expr.h"
#include "edge/record.h"
#include "edge/stages/deadband.h"
#include "edge/stages/dedup.h"
#include "edge/stages/downsample.h"
#include "edge/stages/fft.h"
#include "edge/stages/join.h"
#include "edge/stages/map.h"
#include "edge/stages/stage.h"
#include "edge/stages/window.h"

namespace ganglion::edge {

struct FilterSpec {
  std::string condition;
};
using StageSpec = std::variant<FilterSpec, MapSpec, DeadbandSpec, DedupSpec, DownsampleSpec, WindowSpec,
                               DetectSpec, FftSpec, JoinSpec>;

struct PipelineSpec {
  std::string name;
  std::vector<StageSpec> stages;
  size_t max_series = 100'000;
  /// Once the series table is 90% full, series idle this long are forgotten (at least the
  /// stages' reach: a window's length and lateness, a join's `within` and `wait`, a
  /// downsample's interval).
  int64_t forget_idle_ms = 3'600'000;
  /// Marks window records' ids (`<pipeline>.stages[i].window@<generation>`): a changed
  /// pipeline flushes its open windows and its successor opens the same intervals again, and
  /// the two partial windows must not share an id. The runtime sets it from the pipeline's
  /// settings (the same settings give the same ids, so a replay after a crash matches); ""
  /// leaves it out.
  std::string generation = {};
};

/// What is wrong with one stage of a pipeline (buildPipeline): `stage` is its index.
struct StageError {
  size_t stage;
  std::string message;
};

/// A stable short name of `settings` (FNV-1a, 8 hex digits): PipelineSpec::generation.
std::string settingsGeneration(std::string_view settings);

class Pipeline {
 public:
  /// Receives each non-empty batch that leaves the last stage (sinks, rules). The batch is
  /// reused after the call returns.
  using Output = std::function<void(const Batch&, const Pipeline&)>;

  Pipeline(std::string name, std::shared_ptr<const FieldNames> names, size_t max_series);
  const std::string& name() const { return name_; }
  const FieldNames& fieldNames() const { return *names_; }
  SeriesTable& series() { return series_; }
  const SeriesTable& series() const { return series_; }

  /// The id of an origin (a source's name; stages register theirs when built), created on first
  /// use. At most 65,535.
  uint16_t origin(std::string_view name);
  std::string_view originName(uint16_t id) const { return origins_[id]; }

  void addStage(std::unique_ptr<Stage> stage) {
    if (std::string key = stage->stateKey(); !key.empty()) stateful_.push_back({stage.get(), std::move(key)});
    stages_.push_back(std::move(stage));
  }
  const std::vector<std::unique_ptr<Stage>>& stages() const { return stages_; }
  void setOutput(Output output) { output_ = std::move(output); }

  /// Runs `batch` through the stages (it is edited in place) and hands what is left to the
  /// output. `wall_ms`: now (epoch ms).
  void push(Batch& batch, int64_t wall_ms);
  /// Lets time-driven stages close what wall time closes (windows without readings); what they
  /// emit runs through the stages after them. Call it often (every 100 ms or so).
  void tick(int64_t wall_ms);
  /// Closes everything open (shutdown).
  void flush(int64_t wall_ms);
  /// When the series table is 90% full or more (and at most every 10 s): forgets the series
  /// not seen for forgetAfterMs() that no stage still needs (open windows, held readings), so
  /// new devices are taken again after a flood of invented names. Every stage drops what it
  /// kept for them first. Returns how many it forgot. Call it from the tick.
  size_t forgetIdle(int64_t wall_ms);
  int64_t forgetAfterMs() const { return forget_after_ms_; }
  /// Series forgotten so far.
  uint64_t seriesForgotten() const { return forgotten_; }

  /// The state of its stages worth keeping across restarts (detector histories), or "" when
  /// none of its stages has any. Pipeline's worker.
  std::string saveState() const;
  /// Restores what saveState() wrote into stages with the same state key (a stage whose key
  /// changed, or that is gone, starts afresh). Returns how many series it restored; an error
  /// when `state` does not parse (nothing, or part of it, restored then). `now_ms`: the wall
  /// clock; `warmed_only`: see Stage::restoreState. Main thread before the pipeline runs, or
  /// on its worker.
  Result<size_t> restoreState(std::string_view state, int64_t now_ms = INT64_MAX, bool warmed_only = false);
  /// The stages that keep state across restarts, with their state keys (taken once, when
  /// the stage is added).
  struct StatefulStage {
    Stage* stage;
    std::string key;
  };
  const std::vector<StatefulStage>& statefulStages() const { return stateful_; }
  bool hasState() const { return !stateful_.empty(); }

  /// Records that reached the output so far.
  uint64_t recordsOut() const { return records_out_; }
  /// The smallest `seq` of the readings its stages hold (UINT64_MAX: none). See Stage::oldestSeq.
  uint64_t oldestSeq() const {
    uint64_t oldest = UINT64_MAX;
    for (const auto& s : stages_) oldest = std::min(oldest, s->oldestSeq());
    return oldest;
  }

 private:
  void runFrom(size_t first_stage, Batch& batch, StageContext& ctx);

  std::string name_;
  std::shared_ptr<const FieldNames> names_;
  SeriesTable series_;
  std::vector<std::string> origins_;
  std::vector<std::unique_ptr<Stage>> stages_;
  std::vector<StatefulStage> stateful_;
  expr::Evaluator evaluator_;
  Output output_;
  Batch tick_batch_;
  uint64_t records_out_ = 0;
  int64_t forget_after_ms_ = 3'600'000;
  int64_t next_sweep_ms_ = INT64_MIN;
  uint64_t forgotten_ = 0;
  std::vector<uint8_t> keep_;  // forgetIdle's marks, by SeriesId
  friend Result<std::unique_ptr<Pipeline>> buildPipeline(const PipelineSpec&,
                                                         std::shared_ptr<const FieldNames>,
                                                         std::vector<StageError>*);
};

/// The fields every config knows: `window_ms`, the aggregates, and the detector events' fields.
/// Main thread, before building pipelines.
void internStandardFields(FieldNames& names);

/// The number fields a pipeline's stages name beyond the standard ones (a join's fields):
/// `names` must hold them when the pipeline is built.
std::vector<std::string> pipelineFieldNames(const PipelineSpec& spec);

/// Builds a pipeline from its spec: compiles its expressions (errors name the stage:
/// "stages[0].filter: 1:9: unknown field 'valu'"), sizes its stages. `names` must hold the
/// standard fields. Every stage is tried, a wrong one counted as if it were right for the
/// stages after it; the first error is returned, and `stage_errors`, when given, gets each
/// failing stage's. Main thread (config load) and the blocking pool (config checks).
Result<std::unique_ptr<Pipeline>> buildPipeline(const PipelineSpec& spec,
                                                std::shared_ptr<const FieldNames> names,
                                                std::vector<StageError>* stage_errors = nullptr);

}  // namespace ganglion::edge
