// The fft stage: band energies of known signals, blocks started afresh on gaps, build errors;
// and the transform itself against a plain DFT.
#include "edge/stages/fft.h"

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <random>
#include <vector>

#include "edge/pipeline.h"
#include "edge/test_pipeline.h"

namespace ganglion::edge {
namespace {

using test_support::Harness;
using test_support::standardNames;

constexpr int64_t kT0 = 1'764'460'800'000;

FftSpec spec() {
  return FftSpec{
      .size = 1024, .sample_rate = 1000, .bands = {{20, 100}, {200, 400}, {400, 500}}, .metric = "vib"};
}

PipelineSpec pipelineOf(FftSpec f) { return PipelineSpec{.name = "p", .stages = {std::move(f)}}; }

TEST(EdgeFft, TheTransformMatchesAPlainDft) {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> n(0, 1);
  for (size_t size : {16u, 64u, 1024u}) {
    std::vector<double> re(size), im(size, 0);
    for (double& v : re) v = n(rng);
    const std::vector<double> x = re;
    fftInPlace(re, im);
    for (size_t k : {size_t{0}, size_t{1}, size / 3, size / 2, size - 1}) {
      std::complex<double> sum = 0;
      for (size_t t = 0; t < size; ++t)
        sum += x[t] * std::polar(1.0, -2 * std::numbers::pi * static_cast<double>(k * t) /
                                          static_cast<double>(size));
      EXPECT_NEAR(re[k], sum.real(), 1e-9) << size << " " << k;
      EXPECT_NEAR(im[k], sum.imag(), 1e-9) << size << " " << k;
    }
  }
}

TEST(EdgeFft, BandsHoldTheRmsOfTheirTones) {
  Harness h(pipelineOf(spec()));
  // 10 + 2 sin(50 Hz) + 0.5 sin(300 Hz), sampled at 1 kHz: two blocks.
  for (int i = 0; i < 2048; ++i) {
    const double t = i / 1000.0;
    h.reading(
        "pump", "vib", kT0 + i,
        10 + 2 * std::sin(2 * std::numbers::pi * 50 * t) + 0.5 * std::sin(2 * std::numbers::pi * 300 * t));
  }
  h.reading("pump", "temp", kT0, 40);  // another metric passes through
  const auto windows = h.ofKind(RecordKind::kWindow);
  ASSERT_EQ(windows.size(), 2u);
  ASSERT_EQ(h.out.records.size(), 3u);  // the 2,048 readings were consumed
  const Record& w = windows[0];
  EXPECT_EQ(w.ts, kT0);
  EXPECT_EQ(windows[1].ts, kT0 + 1024);
  EXPECT_EQ(h.field(w, "count"), 1024);
  EXPECT_EQ(h.field(w, "window_ms"), 1024);
  EXPECT_NEAR(h.field(w, "band_1"), 2 / std::sqrt(2), 0.03);
  EXPECT_NEAR(h.field(w, "band_2"), 0.5 / std::sqrt(2), 0.01);
  EXPECT_LT(h.field(w, "band_3"), 0.01);
  EXPECT_NEAR(h.field(w, "rms"), std::sqrt(2 + 0.125), 0.01);
  EXPECT_NEAR(h.field(w, "peak_hz"), 50, 1000.0 / 1024);
  EXPECT_TRUE(std::isnan(h.field(w, "band_4")));
  EXPECT_EQ(h.pipeline->stages()[0]->counters.out, 3u);
}

TEST(EdgeFft, HugeSignalsAreMeasuredAndAConstantOneHasNoPeak) {
  FftSpec f = spec();
  f.size = 16;
  f.sample_rate = 16;
  f.bands = {{0, 4}, {4, 8}};
  Harness h(pipelineOf(f));
  // A 2 Hz sine of amplitude 1e200 and 1e308: squares overflow a double; it read as silence
  // (rms 0, bands 0) before.
  for (double amplitude : {1e200, 1e308})
    for (int i = 0; i < 16; ++i)
      h.reading("pump", "vib", kT0 + (amplitude > 1e300 ? 1000 : 0) + i * 62,
                amplitude * std::sin(2 * std::numbers::pi * 2 * i / 16));
  for (int i = 0; i < 16; ++i) h.reading("pump", "vib", kT0 + 2000 + i * 62, 5);  // constant
  const auto windows = h.ofKind(RecordKind::kWindow);
  ASSERT_EQ(windows.size(), 3u);
  EXPECT_NEAR(h.field(windows[0], "rms") / 1e200, 1 / std::sqrt(2), 1e-9);
  EXPECT_NEAR(h.field(windows[1], "rms") / 1e308, 1 / std::sqrt(2), 1e-9);
  EXPECT_NEAR(h.field(windows[0], "band_1") / 1e200, 1 / std::sqrt(2), 0.05);
  EXPECT_LT(h.field(windows[0], "band_2") / 1e200, 0.01);
  EXPECT_EQ(h.field(windows[1], "peak_hz"), 2);
  EXPECT_EQ(h.field(windows[2], "rms"), 0);
  EXPECT_TRUE(std::isnan(h.field(windows[2], "peak_hz")));  // left out: no peak in a constant
}

TEST(EdgeFft, BlocksStartingInOneMillisecondGetTimesAndIdsApart) {
  FftSpec f = spec();
  f.size = 16;
  Harness h(pipelineOf(f));
  // 32 readings sharing one ts: two blocks. Both stamped kT0, they shared an id, and a
  // receiver de-duplicating on it kept one.
  for (int i = 0; i < 32; ++i) h.reading("pump", "vib", kT0, std::sin(i));
  const auto windows = h.ofKind(RecordKind::kWindow);
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_EQ(windows[0].ts, kT0);
  EXPECT_EQ(windows[1].ts, kT0 + 1);
}

TEST(EdgeFft, AGapOrAnOlderReadingStartsTheBlockAgain) {
  FftSpec f = spec();
  f.size = 16;
  Harness h(pipelineOf(f));
  for (int i = 0; i < 10; ++i) h.reading("pump", "vib", kT0 + i, i);
  EXPECT_EQ(h.pipeline->stages()[0]->oldestSeq(), 0u);  // it holds readings not out yet
  h.reading("pump", "vib", kT0 + 5000, 1);              // 5 s later: the 10 are left behind
  EXPECT_EQ(h.pipeline->stages()[0]->counters.suppressed, 10u);
  h.reading("pump", "vib", kT0 + 4999, 1);  // older than the block's last
  EXPECT_EQ(h.pipeline->stages()[0]->counters.suppressed, 11u);
  for (int i = 1; i < 16; ++i) h.reading("pump", "vib", kT0 + 5000 + i, i % 2);
  EXPECT_EQ(h.ofKind(RecordKind::kWindow).size(), 1u);
  EXPECT_EQ(h.pipeline->stages()[0]->oldestSeq(), UINT64_MAX);
  // A partial block at a stop is left out, and said.
  for (int i = 0; i < 3; ++i) h.reading("pump", "vib", kT0 + 6000 + i, i);
  h.pipeline->flush(0);
  EXPECT_EQ(h.pipeline->stages()[0]->counters.suppressed, 14u);
  EXPECT_EQ(h.ofKind(RecordKind::kWindow).size(), 1u);
}

TEST(EdgeFft, BuildErrorsSayWhatIsWrong) {
  auto err = [](FftSpec f) {
    auto built = buildPipeline(pipelineOf(std::move(f)), standardNames());
    return built.ok() ? std::string("built") : built.error().message;
  };
  FftSpec f = spec();
  f.size = 1000;
  EXPECT_EQ(err(f), "stages[0].fft: size is a power of two from 16 to 16384");
  f = spec();
  f.sample_rate = 0;
  EXPECT_NE(err(f).find("sample_rate (Hz) must be above 0"), std::string::npos);
  f.sample_rate = 2'000'000;  // a 1024 block would last 0.5 ms
  EXPECT_NE(err(f).find("at least 1 ms"), std::string::npos);
  f = spec();
  f.bands = {{10, 600}};
  EXPECT_NE(err(f).find("band 1 must be [low, high) Hz"), std::string::npos);
  f.bands = {{100, 100}};
  EXPECT_NE(err(f).find("band 1 must be"), std::string::npos);
  f.bands.clear();
  EXPECT_NE(err(f).find("1 to 8 bands"), std::string::npos);
  f.bands.assign(9, {1, 2});
  EXPECT_NE(err(f).find("1 to 8 bands"), std::string::npos);
  // Its fields reach the stages after it; band_2 of a one-band fft does not.
  f = spec();
  f.bands = {{20, 100}};
  DetectSpec d;
  d.name = "d";
  d.field = "band_2";
  auto built = buildPipeline(PipelineSpec{.name = "p", .stages = {f, d}}, standardNames());
  ASSERT_FALSE(built.ok());
  EXPECT_NE(built.error().message.find("no number field 'band_2'"), std::string::npos);
  d.field = "band_1";
  EXPECT_TRUE(buildPipeline(PipelineSpec{.name = "p", .stages = {f, d}}, standardNames()).ok());
  // A window or fft after it that wants the readings it took would get none.
  auto build = [](std::vector<StageSpec> stages) {
    auto built = buildPipeline(PipelineSpec{.name = "p", .stages = std::move(stages)}, standardNames());
    return built.ok() ? std::string("built") : built.error().message;
  };
  const WindowSpec window{.aggregates = {Aggregate::kCount}};
  FftSpec all = spec();
  all.metric.clear();
  EXPECT_EQ(build({all, window}).substr(0, 60),
            "stages[1].window: the stages[0].fft before it consumes the r");
  EXPECT_EQ(build({f, window}), "built");  // the window takes the readings of other metrics
  EXPECT_EQ(build({window, f}).substr(0, 60), "stages[1].fft: the stages[0].window before it consumes the r");
  EXPECT_EQ(build({f, f}),
            "stages[1].fft: the stages[0].fft before it consumes the readings of vib, so this fft "
            "would get none");
  FftSpec acc = spec();
  acc.metric = "acc";
  EXPECT_EQ(build({f, acc}), "built");
  EXPECT_EQ(build({f, all}), "built");
  EXPECT_EQ(build({all, acc}).substr(0, 50), "stages[1].fft: the stages[0].fft before it consume");
}

TEST(EdgeFft, AnHstOverMoreThanEightFieldsIsRefusedNotBuilt) {
  // All eight bands and the rms: nine features. Making the detector first overran its trees
  // (a SIGSEGV at `ganglion check`, and at a reload of a running gateway).
  FftSpec f = spec();
  f.bands.assign(8, {20, 100});
  DetectSpec d;
  d.name = "spectrum";
  d.method = "hst";
  d.history = kMinHstHistory;
  d.fields = {"band_1", "band_2", "band_3", "band_4", "band_5", "band_6", "band_7", "band_8", "rms"};
  auto built = buildPipeline(PipelineSpec{.name = "p", .stages = {f, d}}, standardNames());
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.error().message,
            "stages[1].detect: hst judges 1 to 8 features together: fields: [rms, p2p]");
  d.fields.pop_back();
  EXPECT_TRUE(buildPipeline(PipelineSpec{.name = "p", .stages = {f, d}}, standardNames()).ok());
}

}  // namespace
}  // namespace ganglion::edge
