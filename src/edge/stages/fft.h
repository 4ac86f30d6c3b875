// `fft: { size: 1024, sample_rate: 10000, bands: [[10, 100], [100, 1000]], metric: vibration }`:
// band energies of a fast-sampled signal (vibration). Per series, `size` readings in arrival
// order make a block; a full block (mean removed, Hann window) is transformed and becomes one
// window record: `ts` = the block's first reading's, `window_ms` = size / sample_rate,
// `count`, `rms` (of the block, mean removed), `peak_hz` (the strongest frequency above 0),
// and `band_1` ... `band_n`: the signal's RMS within each band [low, high) Hz (Parseval: the
// bands' squares add up to `rms`² when they cover the spectrum). The readings it transforms
// are consumed; other metrics, readings without a value and other records pass through.
// A reading older than the block's last, or a gap longer than a block's duration (at least
// 1 s), starts the block afresh; the readings left behind are counted as `suppressed`, as is
// a partial block at a stop or reload.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "edge/stages/stage.h"

namespace ganglion::edge {

/// Bands per fft stage at most (`band_1` ... `band_8`).
inline constexpr size_t kMaxFftBands = 8;
/// Readings per block: a power of two from 16 to this.
inline constexpr uint32_t kMaxFftSize = 16384;

struct FftSpec {
  uint32_t size = 1024;
  double sample_rate = 0;                        ///< Hz (required)
  std::vector<std::pair<double, double>> bands;  ///< [low, high) Hz
  std::string metric;                            ///< only readings of this metric; empty: all
};

/// In place, radix 2: `re`/`im` hold n = 2^k points. Exposed for its test.
void fftInPlace(std::vector<double>& re, std::vector<double>& im);

class FftStage final : public Stage {
 public:
  /// `metric`: the interned metric (StringPool::kNotFound: any). `origin`: the window records'
  /// ids. Field ids (count, window_ms, rms, peak_hz, band_i) are interned beforehand.
  FftStage(FftSpec spec, const FieldNames& names, StringId metric, uint16_t origin);
  void process(Batch& batch, StageContext& ctx) override;
  void flush(Batch& out, StageContext& ctx) override;
  uint64_t oldestSeq() const override;
  std::string_view kind() const override { return "fft"; }
  /// A forgotten series' unfinished block goes (counted as suppressed, as a gap would).
  void forgetSeries(const Forgetting& f) override;

 private:
  struct Block {
    std::vector<double> samples;
    int64_t first_ts = 0, last_ts = 0;
    uint64_t first_seq = UINT64_MAX;
    int64_t out_ts = INT64_MIN;  ///< the ts of the series' last window record
  };
  void transform(SeriesId series, Block& block, Batch& out);

  FftSpec spec_;
  StringId metric_;
  uint16_t origin_;
  int64_t max_gap_ms_;
  FieldId count_field_, window_ms_field_, rms_field_, peak_field_;
  std::vector<FieldId> band_fields_;
  std::vector<std::pair<uint32_t, uint32_t>> band_bins_;  // [first, last) bins per band
  std::vector<double> window_;                            // Hann
  double window_power_ = 0;                               // sum of window²
  std::vector<Block> blocks_;                             // by SeriesId
  std::vector<double> re_, im_;
  Batch scratch_;
};

}  // namespace ganglion::edge
