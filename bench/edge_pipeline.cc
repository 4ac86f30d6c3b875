// The edge pipeline alone, on one core: an in-process source hands batches of readings to
// filter → 1 s tumbling windows (count, mean, min, max, rms) by device and metric → robust
// z-score on each window's rms (history 120, threshold 6), the pipeline of issue 11's example.
// Prints readings per second and CPU nanoseconds per reading (this thread's CPU time).
// With `--join 1` the pipeline is the seed's HVAC join instead: each device's temperature
// joined with its occupancy and one weather station's outdoor temperature (join stage, as of
// each temperature's time), then a filter on the joined fields. Readings go round
// temperature, occupancy, temperature, occupancy... of each device, and every 64th is the
// station's.
//
// With `--flood 1` every reading names a new device (a flood of invented names), 100,000
// readings per second of event time: the table (max_series = --series) fills, and idle series
// are forgotten (forget_idle 1 s) so new ones are taken again; it prints how many were
// refused and forgotten, and the longest sweep.
//
// With `--device-limit RATE` each reading first passes the pipeline's per-device flood limit
// (DeviceLimiter, as PipelineHost::ingest runs it: `device_limit: { rate: RATE }`), readings
// going round the devices so that no two in a row share one (each takes a hash lookup, the
// limiter's worst case); it prints how many were limited.
//
//   ganglion_edge_bench [--readings N] [--series N] [--batch N] [--rate-per-series HZ] [--join 1]
//                       [--flood 1] [--device-limit RATE]
//
// Series are interned once beforehand (a connector maps topics to series through a cache);
// values come from a precomputed table so the random generator is not measured.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "edge/device_limit.h"
#include "edge/pipeline.h"

using namespace ganglion::edge;

namespace {

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double wallSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t readings = 20'000'000;
  uint32_t series_count = 1000;
  uint32_t batch_size = 1024;
  uint32_t rate = 1000;  // readings per second per series, in event time
  bool join = false;
  bool flood = false;
  uint64_t device_limit = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--readings"))
      readings = v;
    else if (!std::strcmp(argv[i], "--series"))
      series_count = static_cast<uint32_t>(v);
    else if (!std::strcmp(argv[i], "--batch"))
      batch_size = static_cast<uint32_t>(v);
    else if (!std::strcmp(argv[i], "--rate-per-series"))
      rate = static_cast<uint32_t>(v);
    else if (!std::strcmp(argv[i], "--join"))
      join = v != 0;
    else if (!std::strcmp(argv[i], "--flood"))
      flood = v != 0;
    else if (!std::strcmp(argv[i], "--device-limit"))
      device_limit = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!series_count || !batch_size || !rate) return 2;

  auto names = std::make_shared<FieldNames>();
  internStandardFields(*names);
  WindowSpec window;
  window.size_ms = 1000;
  window.aggregates = {Aggregate::kCount, Aggregate::kMean, Aggregate::kMin, Aggregate::kMax,
                       Aggregate::kRms};
  DetectSpec detect;
  detect.name = "vib";
  detect.field = "rms";
  detect.metric = "vibration";
  detect.history = 120;
  detect.threshold = 6;
  PipelineSpec spec{.name = "pump-health",
                    .stages = {FilterSpec{"value > -1000 and value < 1000"}, window, detect}};
  if (flood) {
    spec.max_series = series_count;
    spec.forget_idle_ms = 1000;
  }
  if (join) {
    JoinSpec hvac{.on = "temperature",
                  .with = {JoinPartner{.metric = "occupancy"},
                           JoinPartner{.metric = "temperature", .device = "station", .as = "outdoor"}}};
    spec = PipelineSpec{.name = "hvac",
                        .stages = {std::move(hvac), FilterSpec{"occupancy > 0 or outdoor < 30"}}};
  }
  for (const auto& f : pipelineFieldNames(spec)) names->intern(f, FieldNames::Type::kNumber);
  auto built = buildPipeline(spec, names);
  if (!built.ok()) {
    std::fprintf(stderr, "%s\n", built.error().message.c_str());
    return 1;
  }
  Pipeline& pipeline = **built;
  uint64_t windows = 0, events = 0, joined = 0;
  pipeline.setOutput([&](const Batch& b, const Pipeline&) {
    for (const Record& r : b.records) {
      windows += r.kind == RecordKind::kWindow;
      events += r.kind == RecordKind::kEvent;
      joined += r.kind == RecordKind::kReading && join && r.field_count >= 2;
    }
  });
  const uint16_t origin = pipeline.origin("plant");
  std::vector<SeriesId> ids;
  std::vector<std::string> devices;  // the device of each of ids
  for (uint32_t i = 0; i < series_count && !flood; ++i) {
    if (!join) {
      devices.push_back("pump-" + std::to_string(i));
      ids.push_back(pipeline.series().intern("plant", devices.back(), "vibration"));
      continue;
    }
    devices.push_back("room-" + std::to_string(i / 2));
    // Even: room i/2's temperature, odd: its occupancy.
    ids.push_back(pipeline.series().intern("plant", "room-" + std::to_string(i / 2),
                                           i % 2 ? "occupancy" : "temperature"));
  }
  const SeriesId station = join ? pipeline.series().intern("plant", "station", "temperature") : SeriesId{};
  std::vector<double> values(1 << 16);
  std::mt19937_64 rng(42);
  std::normal_distribution<double> noise(0, 0.1);
  for (double& v : values) v = noise(rng);

  // Readings go round the series; each series gets `rate` readings per second of event time.
  const int64_t t0 = 1'764'460'800'000;
  Batch batch;
  batch.records.reserve(batch_size);
  uint64_t seq = 0;
  const double cpu0 = threadCpuSeconds(), wall0 = wallSeconds();
  int64_t last_tick = 0;
  uint64_t refused = 0;
  double longest_sweep = 0;
  std::string device;
  std::unique_ptr<DeviceLimiter> limiter;
  if (device_limit) limiter = std::make_unique<DeviceLimiter>(device_limit, 0);
  while (seq < readings) {
    batch.clear();
    const uint64_t n = std::min<uint64_t>(batch_size, readings - seq);
    if (flood) {
      const int64_t now = t0 + static_cast<int64_t>(seq / 100);
      pipeline.series().setClock(now);
      for (uint64_t i = 0; i < n; ++i, ++seq) {
        device = "bogus-";
        device += std::to_string(seq);
        const SeriesId id = pipeline.series().intern("plant", device, "vibration");
        if (id == kNoSeries) {
          ++refused;
          continue;
        }
        Record& r = batch.records.emplace_back();
        r.series = id;
        r.ts = now;
        r.value = values[seq & 0xffff];
        r.origin = origin;
        r.seq = seq;
      }
      pipeline.push(batch, now);
      if (now - last_tick >= 100) {
        pipeline.tick(now);
        const double s0 = threadCpuSeconds();
        pipeline.forgetIdle(now);
        longest_sweep = std::max(longest_sweep, threadCpuSeconds() - s0);
        last_tick = now;
      }
      continue;
    }
    for (uint64_t i = 0; i < n; ++i, ++seq) {
      const uint64_t round = seq / series_count;
      const int64_t ts = t0 + static_cast<int64_t>(round * 1000 / rate);
      if (limiter && !limiter->admit("plant", devices[seq % series_count], ts)) continue;
      Record& r = batch.records.emplace_back();
      r.series = join && seq % 64 == 63 ? station : ids[seq % series_count];
      r.ts = ts;
      r.value = values[seq & 0xffff];
      r.origin = origin;
      r.seq = seq;
    }
    if (batch.records.empty()) continue;
    const int64_t now = batch.records.back().ts;
    pipeline.push(batch, now);
    if (now - last_tick >= 100) {
      pipeline.tick(now);
      last_tick = now;
    }
  }
  pipeline.flush(t0);
  const double cpu = threadCpuSeconds() - cpu0, wall = wallSeconds() - wall0;
  std::printf(
      "readings %llu series %u batch %u: %.0f readings/s (wall), %.1f ns CPU per reading, "
      "%llu windows, %llu events, %llu joined\n",
      static_cast<unsigned long long>(readings), series_count, batch_size,
      static_cast<double>(readings) / wall, cpu * 1e9 / static_cast<double>(readings),
      static_cast<unsigned long long>(windows), static_cast<unsigned long long>(events),
      static_cast<unsigned long long>(joined));
  if (limiter)
    std::printf("device_limit %llu/s: %llu readings limited\n", static_cast<unsigned long long>(device_limit),
                static_cast<unsigned long long>(limiter->limited()));
  if (flood)
    std::printf("flood: %llu refused, %llu series forgotten, longest sweep %.2f ms (CPU), %zu series held\n",
                static_cast<unsigned long long>(refused),
                static_cast<unsigned long long>(pipeline.seriesForgotten()), longest_sweep * 1e3,
                pipeline.series().size());
  return 0;
}
