// Detector, dedup and join state read back from disk (edge/state): a state file whatever its bytes, and a
// pipeline's restoreState() on any body; the admin API's stopped set on any body.
//
// Input: byte 0 picks the restoring detector's method (robust z-score, or half-space trees) and its history
// length; the rest is both a state file's whole content and a state body. Checks: readStateFile() refuses or
// returns a body without crashing; a body restoreState() takes, saved again and restored into a fresh
// pipeline, saves the same bytes (a restore keeps what it took, nothing more); histories never
// hold more than the detector's history length.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "edge/pipeline.h"
#include "edge/state/state_file.h"
#include "edge/stopped_parts.h"
#include "fuzz_check.h"

using namespace ganglion::edge;

namespace {

std::unique_ptr<Pipeline> makePipeline(uint32_t history, bool trees) {
  static std::shared_ptr<FieldNames> names = [] {
    auto n = std::make_shared<FieldNames>();
    internStandardFields(*n);
    return n;
  }();
  DetectSpec detect;
  detect.name = "vib";
  detect.history = history;
  if (trees) {  // small trees: the fuzzer reaches their leaves
    detect.method = "hst";
    detect.fields = {"value"};
    detect.history = kMinHstHistory + history;
    detect.trees = 2;
    detect.depth = 3;
  }
  // A dedup stage too: its memory of recent readings is state as well; and a join, whose
  // partners' recent values are saved by metric and device.
  JoinSpec join{
      .on = "t",
      .with = {JoinPartner{.metric = "o"}, JoinPartner{.metric = "w", .device = "station", .as = "outdoor"}}};
  PipelineSpec spec{
      .name = "p",
      .stages = {FilterSpec{"value > -1000"}, detect, DedupSpec{.remember = 1 + history % 8}, join},
      .max_series = 64};
  for (const auto& f : pipelineFieldNames(spec)) names->intern(f, FieldNames::Type::kNumber);
  auto built = buildPipeline(spec, names);
  CHECK(built.ok());
  return std::move(*built);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint32_t history = 3 + data[0] % 40;
  const bool trees = data[0] & 0x80;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

  static const std::filesystem::path file = std::filesystem::temp_directory_path() /
                                            ("ganglion-state-fuzz-" + std::to_string(::getpid())) / "p.state";
  std::filesystem::create_directories(file.parent_path());
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  auto body = readStateFile(file);
  if (body.ok()) CHECK(body->size() + 20 == bytes.size());

  // A pipeline's saved state (stages + rules) decodes only to what encodes back to it.
  if (auto decoded = decodePipelineState(bytes); decoded.ok() && !bytes.empty())
    CHECK(encodePipelineState(*decoded) == bytes);

  // The admin API's stopped set (edge.data_dir/stopped.state): what decodes encodes to a body
  // that decodes to the same set.
  if (auto stopped = StoppedParts::decode(bytes); stopped.ok()) {
    auto again = StoppedParts::decode(StoppedParts::encode(*stopped));
    CHECK(again.ok() && *again == *stopped);
  }

  auto first = makePipeline(history, trees);
  auto restored = first->restoreState(bytes);
  if (!restored.ok()) return 0;
  // Two stages with state per series, and the join's entries: each at least one sample of 17 bytes.
  CHECK(*restored <= 2 * first->series().size() + bytes.size() / 17);
  const std::string saved = first->saveState();
  auto second = makePipeline(history, trees);
  auto again = second->restoreState(saved);
  CHECK(again.ok());
  CHECK(second->saveState() == saved);
  // Forgotten: a pipeline with that state, filled past 90% of its table by new devices and
  // swept long after, forgets every series and every name they held (a join's partner
  // values included: nothing heard since), and what it saves then restores.
  {
    auto forgetful = makePipeline(history, trees);
    const size_t names_at_start = forgetful->series().strings().size();
    CHECK(forgetful->restoreState(saved, 1'000'000).ok());
    SeriesTable& series = forgetful->series();
    Batch batch;
    const uint16_t origin = forgetful->origin("fuzz");
    series.setClock(1'000'000);
    for (int i = 0; series.size() * 10 < series.maxSeries() * 9 && i < 256; ++i) {
      Record r;
      r.series = series.intern("fuzz", "filler-" + std::to_string(i / 2), i % 2 ? "t" : "o");
      if (r.series == kNoSeries) break;
      r.ts = i;
      r.value = i;
      r.origin = origin;
      batch.push(r);
    }
    forgetful->push(batch, 1'000'000);
    if (series.size() * 10 >= series.maxSeries() * 9) {
      CHECK(forgetful->forgetIdle(1'000'000'000'000) > 0);
      CHECK(series.size() == 0);
      CHECK(series.strings().size() == names_at_start);
    }
    auto after = makePipeline(history, trees);
    CHECK(after->restoreState(forgetful->saveState()).ok());
  }
  // Written and read back through a state file, the body is the same.
  CHECK(writeStateFile(file, saved).ok());
  auto read = readStateFile(file);
  CHECK(read.ok() && *read == saved);
  return 0;
}
