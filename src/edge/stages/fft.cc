#include "edge/stages/fft.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ganglion::edge {

void fftInPlace(std::vector<double>& re, std::vector<double>& im) {
  const size_t n = re.size();
  for (size_t i = 1, j = 0; i < n; ++i) {  // bit-reversed order
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(re[i], re[j]), std::swap(im[i], im[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const double angle = -2 * std::numbers::pi / static_cast<double>(len);
    const double wr = std::cos(angle), wi = std::sin(angle);
    for (size_t i = 0; i < n; i += len) {
      double cr = 1, ci = 0;
      for (size_t k = 0; k < len / 2; ++k) {
        const size_t a = i + k, b = a + len / 2;
        const double tr = re[b] * cr - im[b] * ci, ti = re[b] * ci + im[b] * cr;
        re[b] = re[a] - tr, im[b] = im[a] - ti;
        re[a] += tr, im[a] += ti;
        const double next = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = next;
      }
    }
  }
}

FftStage::FftStage(FftSpec spec, const FieldNames& names, StringId metric, uint16_t origin)
    : spec_(std::move(spec)),
      metric_(metric),
      origin_(origin),
      max_gap_ms_(std::max<int64_t>(1000, std::llround(spec_.size * 1000.0 / spec_.sample_rate))),
      count_field_(names.find("count")),
      window_ms_field_(names.find("window_ms")),
      rms_field_(names.find("rms")),
      peak_field_(names.find("peak_hz")) {
  const uint32_t n = spec_.size;
  const double bin_hz = spec_.sample_rate / n;
  for (size_t b = 0; b < spec_.bands.size(); ++b) {
    band_fields_.push_back(names.find("band_" + std::to_string(b + 1)));
    // Bins whose centre frequency lies in [low, high), within 1 .. n/2.
    const auto first = static_cast<uint32_t>(std::max(1.0, std::ceil(spec_.bands[b].first / bin_hz)));
    const auto last = static_cast<uint32_t>(std::min(n / 2.0 + 1, std::ceil(spec_.bands[b].second / bin_hz)));
    band_bins_.emplace_back(first, std::max(first, last));
  }
  window_.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    window_[i] = 0.5 - 0.5 * std::cos(2 * std::numbers::pi * i / n);
    window_power_ += window_[i] * window_[i];
  }
}

void FftStage::process(Batch& batch, StageContext& ctx) {
  scratch_.clear();
  const size_t n = batch.records.size();
  counters.in += n;
  for (size_t i = 0; i < n; ++i) {
    const Record& r = batch.records[i];
    if (r.kind != RecordKind::kReading || r.series == kNoSeries || !r.hasValue() ||
        (metric_ != StringPool::kNotFound && ctx.series.key(r.series).metric != metric_)) {
      scratch_.copyFrom(batch, r);
      ++counters.out;
      continue;
    }
    if (r.series >= blocks_.size()) blocks_.resize(r.series + 1);
    Block& block = blocks_[r.series];
    if (!block.samples.empty() && (r.ts < block.last_ts || r.ts - block.last_ts > max_gap_ms_)) {
      counters.suppressed += block.samples.size();  // out of order, or a gap: start again
      block.samples.clear();
    }
    if (block.samples.empty()) {
      block.samples.reserve(spec_.size);
      block.first_ts = r.ts;
      block.first_seq = r.seq;
    }
    block.samples.push_back(r.value);
    block.last_ts = r.ts;
    if (block.samples.size() == spec_.size) transform(r.series, block, scratch_);
  }
  std::swap(batch, scratch_);
}

void FftStage::transform(SeriesId series, Block& block, Batch& out) {
  const uint32_t n = spec_.size;
  double mean = 0;
  for (double v : block.samples) mean += v / n;
  // In units of the largest deviation, so that squares of values past about 1e154 do not
  // overflow (a huge signal read as silence); a deviation that is itself not finite leaves rms,
  // peak and bands out, as a window leaves out what it cannot compute.
  double scale = 0;
  for (double v : block.samples) scale = std::max(scale, std::abs(v - mean));
  double square_sum = 0;
  re_.assign(n, 0);
  im_.assign(n, 0);
  const double unit = scale > 0 && std::isfinite(scale) ? 1 / scale : 0;
  for (uint32_t i = 0; i < n; ++i) {
    const double centred = (block.samples[i] - mean) * unit;
    square_sum += centred * centred;
    re_[i] = centred * window_[i];
  }
  fftInPlace(re_, im_);
  // One-sided power per bin, scaled so that a band's sum is the signal's mean square within it
  // (the window's power taken out).
  auto power = [&](uint32_t k) {
    const double p = (re_[k] * re_[k] + im_[k] * im_[k]) / (static_cast<double>(n) * window_power_);
    return k == 0 || k == n / 2 ? p : 2 * p;
  };
  uint32_t peak = 1;
  for (uint32_t k = 2; k <= n / 2; ++k)
    if (power(k) > power(peak)) peak = k;
  Record r;
  r.kind = RecordKind::kWindow;
  r.series = series;
  // The block's first reading's time; a block starting at the previous one's time (a burst
  // of readings that share one millisecond) 1 ms later, so that its id differs.
  r.ts = std::max(block.first_ts, block.out_ts == INT64_MIN ? INT64_MIN : block.out_ts + 1);
  block.out_ts = r.ts;
  r.origin = origin_;
  r.seq = block.first_seq;
  out.push(r);
  out.addNumber(count_field_, n);
  out.addNumber(window_ms_field_, std::round(n * 1000.0 / spec_.sample_rate));
  if (std::isfinite(scale)) {
    out.addNumber(rms_field_, scale * std::sqrt(square_sum / n));
    if (scale > 0) out.addNumber(peak_field_, peak * spec_.sample_rate / n);  // a constant block has no peak
    for (size_t b = 0; b < band_bins_.size(); ++b) {
      double sum = 0;
      for (uint32_t k = band_bins_[b].first; k < band_bins_[b].second; ++k) sum += power(k);
      out.addNumber(band_fields_[b], scale * std::sqrt(sum));
    }
  }
  ++counters.out;
  block.samples.clear();
  block.first_seq = UINT64_MAX;
}

void FftStage::flush(Batch&, StageContext&) {
  for (Block& block : blocks_) {
    counters.suppressed += block.samples.size();
    block.samples.clear();
    block.first_seq = UINT64_MAX;
  }
}

void FftStage::forgetSeries(const Forgetting& f) {
  for (size_t id = 0; id < blocks_.size(); ++id)
    if (!f.kept(static_cast<SeriesId>(id))) counters.suppressed += blocks_[id].samples.size();
  forgetBySeries(blocks_, f);
}

uint64_t FftStage::oldestSeq() const {
  uint64_t oldest = UINT64_MAX;
  for (const Block& block : blocks_)
    if (!block.samples.empty()) oldest = std::min(oldest, block.first_seq);
  return oldest;
}

}  // namespace ganglion::edge
