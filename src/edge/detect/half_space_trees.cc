// Half-space trees, a multivariate streaming detector (detector.h).
//
// The trees' shape (which feature each node halves) is random but fixed, and shared by every
// series of the detector: a series holds only its scaling and its box counts. Counts are kept
// for the whole tree of the reference (the path's masses are read at every value) and for the
// leaves only of the window being filled (a node's count is the sum of its leaves': the
// reference is summed up when the window is full).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "edge/detect/detector.h"
#include "edge/state/state_codec.h"

namespace ganglion::edge {
namespace {

/// A node's count must reach this share of the reference for the walk to go deeper (the
/// paper's size limit: small counts are noise, not density).
constexpr double kSizeLimitShare = 0.02;
/// The smallest deviation of the log-mass a score is measured in, in bits (a series whose
/// values always land in equally full boxes would otherwise score any change at 10⁹).
constexpr double kMinDeviationBits = 0.25;

uint64_t splitMix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
double unit(uint64_t& state) { return static_cast<double>(splitMix(state) >> 11) * 0x1.0p-53; }

class HalfSpaceTrees final : public Detector {
 public:
  explicit HalfSpaceTrees(const DetectSpec& spec)
      : fields_(spec.fields),
        dims_(static_cast<uint32_t>(std::clamp<size_t>(spec.fields.size(), 1, kMaxHstFields))),
        depth_(spec.depth),
        window_(spec.history),
        warmup_(warmupOf(spec)),
        alpha_(2.0 / (spec.history + 1.0)),
        threshold_(thresholdOf(spec)),
        min_deviation_(spec.min_scale > 0 ? spec.min_scale : kMinDeviationBits),
        nodes_((2u << depth_) - 1),
        leaves_(1u << depth_),
        first_leaf_(leaves_ - 1) {
    // Each tree's workspace: per feature, a random point s of the learned range [0, 1] and the
    // span s ± 2·max(s, 1 - s), so the range lies inside with room on both sides.
    uint64_t seed = 0x6873745f67616e67ULL;  // fixed: a restart rebuilds the same trees
    trees_.resize(spec.trees);
    for (Tree& t : trees_) {
      std::array<double, kMaxHstFields> lo{}, hi{};
      for (uint32_t f = 0; f < dims_; ++f) {
        const double s = unit(seed), half = 2 * std::max(s, 1 - s);
        lo[f] = s - half;
        hi[f] = s + half;
      }
      t.dim.resize(first_leaf_);
      t.split.resize(first_leaf_);
      build(t, 0, lo, hi, seed);
    }
  }

  Judgement observe(uint32_t slot, double x, int64_t ts) override { return observeAll(slot, {&x, 1}, ts); }

  Judgement observeAll(uint32_t slot, std::span<const double> xs, int64_t) override {
    Judgement j;
    if (xs.size() != dims_ || !std::all_of(xs.begin(), xs.end(), [](double v) { return std::isfinite(v); }))
      return j;
    if (slot >= series_.size()) series_.resize(slot + 1);
    Series& s = series_[slot];
    if (s.ref.empty()) {
      s.warm.insert(s.warm.end(), xs.begin(), xs.end());
      if (s.warm.size() / dims_ >= warmup_) buildReference(s);
      return j;
    }
    std::array<double, kMaxHstFields> u{};
    scale(s, xs, u);
    std::array<uint32_t, kMaxHstFields> votes{};
    const double lm = logMass(s, u, /*leave_out=*/false, &votes);
    const double scale_bits = 1.2533 * std::max(s.dev, min_deviation_);
    j.judged = true;
    j.baseline = s.level;
    j.scale = scale_bits;
    j.score = cappedScore(std::max(0.0, s.level - lm), scale_bits);
    const auto top = std::max_element(votes.begin(), votes.begin() + dims_);
    if (*top > 0) {
      j.feature = static_cast<int>(top - votes.begin());
      j.feature_votes = static_cast<int>(*top);
    }
    j.detail = lm;
    // Learn: the typical log-mass (what an outlier teaches is clipped to the threshold), and
    // the value's leaves in the window being filled.
    learnLevel(s, std::max(lm, s.level - threshold_ * scale_bits));
    for (size_t t = 0; t < trees_.size(); ++t) ++s.latest[t * leaves_ + (leafOf(trees_[t], u) - first_leaf_)];
    if (++s.in_window >= window_) swapReference(s);
    return j;
  }

  void explain(std::string_view feature, double x, const Judgement& j, std::string& out) const override {
    const std::string name(feature);
    explainAll({&name, 1}, {&x, 1}, j, out);
  }

  void explainAll(std::span<const std::string> features, std::span<const double> xs, const Judgement& j,
                  std::string& out) const override {
    auto it = std::back_inserter(out);
    for (size_t f = 0; f < xs.size() && f < features.size(); ++f)
      fmt::format_to(it, "{}{} {:.6g}", f ? ", " : "", features[f], xs[f]);
    fmt::format_to(it,
                   ": {:.3g} robust deviations less dense than usual (log2 mass {:.3g}, typical {:.3g}, "
                   "deviation {:.3g})",
                   j.score, j.detail, j.baseline, j.scale);
    if (j.feature >= 0 && static_cast<size_t>(j.feature) < features.size())
      fmt::format_to(it, "; {} set it apart in {} of {} trees", features[static_cast<size_t>(j.feature)],
                     j.feature_votes, trees_.size());
  }

  std::string_view method() const override { return "hst"; }
  void forget(uint32_t slot) override {
    if (slot < series_.size()) series_[slot] = Series{};
  }

  std::string stateVariant() const override {
    std::string v = fmt::format("trees={} depth={} fields=", trees_.size(), depth_);
    for (const auto& f : fields_) v += f + ",";
    return v;
  }

  // A slot: the warm-up values, or the scaling, the typical log-mass and the counts (per tree,
  // the reference's and the window's non-empty leaves as index << 16 | count).
  void save(uint32_t slot, std::string& out) const override {
    StateEncoder e(out);
    const Series empty;
    const Series& s = slot < series_.size() ? series_[slot] : empty;
    e.u32(dims_);
    e.u8(s.ref.empty() ? 0 : 1);
    if (s.ref.empty()) {
      e.u32(static_cast<uint32_t>(s.warm.size()));
      for (double v : s.warm) e.f64(v);
      return;
    }
    for (uint32_t f = 0; f < dims_; ++f) e.f64(s.lo[f]), e.f64(s.inv_span[f]);
    e.f64(s.level), e.f64(s.dev);
    e.u32(s.learned);
    e.u32(s.in_window);
    for (size_t t = 0; t < trees_.size(); ++t) {
      saveLeaves(e, &s.ref[t * nodes_ + first_leaf_]);
      saveLeaves(e, &s.latest[t * leaves_]);
    }
  }

  bool worthRestoring(std::string_view in) const override {
    StateDecoder d(in);
    d.u32();
    return d.u8() == 1 && d.ok();
  }

  bool restore(uint32_t slot, std::string_view in) override {
    StateDecoder d(in);
    if (d.u32() != dims_ || !d.ok()) return false;
    Series s;
    const uint8_t warmed = d.u8();
    if (warmed > 1) return false;
    if (!warmed) {
      const uint32_t n = d.u32();
      if (!d.ok() || n % dims_ || uint64_t{n} * 8 != in.size() - 9) return false;
      s.warm.resize(n);
      for (double& v : s.warm) v = d.f64();
      if (!std::all_of(s.warm.begin(), s.warm.end(), [](double v) { return std::isfinite(v); }))
        s.warm.clear();
      // A shorter warm-up now: the newest values are enough to start.
      if (s.warm.size() / dims_ >= warmup_) {
        s.warm.erase(s.warm.begin(), s.warm.end() - static_cast<ptrdiff_t>(warmup_ * dims_));
        buildReference(s);
      }
    } else {
      for (uint32_t f = 0; f < dims_; ++f) s.lo[f] = d.f64(), s.inv_span[f] = d.f64();
      s.level = d.f64(), s.dev = d.f64();
      s.learned = d.u32();
      s.in_window = d.u32();
      s.ref.assign(trees_.size() * nodes_, 0);
      s.latest.assign(trees_.size() * leaves_, 0);
      uint32_t ref_total = UINT32_MAX;
      for (size_t t = 0; t < trees_.size() && d.ok(); ++t) {
        uint32_t in_tree = 0, latest_in_tree = 0;
        if (!restoreLeaves(d, &s.ref[t * nodes_ + first_leaf_], in_tree) ||
            !restoreLeaves(d, &s.latest[t * leaves_], latest_in_tree) || latest_in_tree != s.in_window)
          return false;
        if (ref_total == UINT32_MAX) ref_total = in_tree;
        if (in_tree != ref_total || in_tree == 0) return false;  // every tree counts every value once
        sumUp(&s.ref[t * nodes_]);
      }
      if (!d.ok()) return false;
      bool finite = std::isfinite(s.level) && std::isfinite(s.dev) && s.dev >= 0;
      for (uint32_t f = 0; f < dims_; ++f)
        finite = finite && std::isfinite(s.lo[f]) && std::isfinite(s.inv_span[f]) && s.inv_span[f] > 0;
      if (!finite) s = Series{};  // learns afresh
    }
    if (!d.done()) return false;
    if (slot >= series_.size()) series_.resize(slot + 1);
    // A reload's successor that learned already keeps what it learned.
    Series& mine = series_[slot];
    if (mine.ref.empty() && mine.warm.empty()) mine = std::move(s);
    return true;
  }

 private:
  struct Tree {
    std::vector<uint8_t> dim;   // per internal node: the feature it halves
    std::vector<double> split;  // and where
  };
  struct Series {
    std::vector<double> warm;  // warm-up values, `dims_` per reading, until the reference exists
    std::array<double, kMaxHstFields> lo{}, inv_span{};  // scaling: u = (x - lo) * inv_span
    std::vector<uint16_t> ref;     // per tree, every node's count in the reference (heap order)
    std::vector<uint16_t> latest;  // per tree, every leaf's count in the window being filled
    uint32_t in_window = 0;
    double level = 0, dev = 0;  // the typical log2 mass and its mean absolute deviation
    uint32_t learned = 0;       // values the level has learned (plain means until 1/alpha)
  };

  void build(Tree& t, uint32_t node, std::array<double, kMaxHstFields> lo,
             std::array<double, kMaxHstFields> hi, uint64_t& seed) {
    if (node >= first_leaf_) return;
    const auto f = static_cast<uint32_t>(splitMix(seed) % dims_);
    const double mid = (lo[f] + hi[f]) / 2;
    t.dim[node] = static_cast<uint8_t>(f);
    t.split[node] = mid;
    auto left_hi = hi;
    left_hi[f] = mid;
    build(t, 2 * node + 1, lo, left_hi, seed);
    auto right_lo = lo;
    right_lo[f] = mid;
    build(t, 2 * node + 2, right_lo, hi, seed);
  }

  uint32_t leafOf(const Tree& t, const std::array<double, kMaxHstFields>& u) const {
    uint32_t node = 0;
    while (node < first_leaf_) node = 2 * node + (u[t.dim[node]] < t.split[node] ? 1 : 2);
    return node;
  }

  void scale(const Series& s, std::span<const double> xs, std::array<double, kMaxHstFields>& u) const {
    for (uint32_t f = 0; f < dims_; ++f) u[f] = (xs[f] - s.lo[f]) * s.inv_span[f];
  }

  /// log2(1 + the mean over trees of count × 2^depth at the first node along the value's path
  /// whose count is under the size limit, or at its leaf). `leave_out`: the value is one of
  /// the reference's (its own count is taken away). `votes`: per feature, the trees where the
  /// split that led into a thin node was on it.
  double logMass(const Series& s, const std::array<double, kMaxHstFields>& u, bool leave_out,
                 std::array<uint32_t, kMaxHstFields>* votes) const {
    const double limit = std::max(1.0, kSizeLimitShare * (s.ref[0] - (leave_out ? 1 : 0)));
    double total = 0;
    for (size_t t = 0; t < trees_.size(); ++t) {
      const Tree& tree = trees_[t];
      const uint16_t* counts = &s.ref[t * nodes_];
      uint32_t node = 0, parent = UINT32_MAX, k = 0;
      double mass;
      for (;; ++k) {
        mass = counts[node] - (leave_out ? 1.0 : 0.0);
        if (node >= first_leaf_ || mass < limit) break;
        parent = node;
        node = 2 * node + (u[tree.dim[node]] < tree.split[node] ? 1 : 2);
      }
      total += mass * std::ldexp(1.0, static_cast<int>(k));
      if (votes && parent != UINT32_MAX && mass < limit) ++(*votes)[tree.dim[parent]];
    }
    return std::log2(1 + total / static_cast<double>(trees_.size()));
  }

  void learnLevel(Series& s, double lm) const {
    if (s.learned++ == 0) {
      s.level = lm;
      s.dev = 0;
      return;
    }
    const double a = std::max(alpha_, 1.0 / s.learned);
    const double d = lm - s.level;
    s.level += a * d;
    s.dev = (1 - a) * s.dev + a * std::fabs(d);
    s.learned = std::min(s.learned, UINT32_MAX - 1);
  }

  /// The warm-up values become the first reference: they set the scaling, fill the counts,
  /// and (each scored without itself) the typical log-mass.
  void buildReference(Series& s) {
    const size_t n = s.warm.size() / dims_;
    for (uint32_t f = 0; f < dims_; ++f) {
      double lo = s.warm[f], hi = s.warm[f];
      for (size_t i = 1; i < n; ++i)
        lo = std::min(lo, s.warm[i * dims_ + f]), hi = std::max(hi, s.warm[i * dims_ + f]);
      const double span = std::max(hi - lo, std::max(std::max(std::fabs(lo), std::fabs(hi)) * 1e-9, 1e-12));
      s.lo[f] = lo;
      s.inv_span[f] = 1 / span;
    }
    s.ref.assign(trees_.size() * nodes_, 0);
    s.latest.assign(trees_.size() * leaves_, 0);
    std::array<double, kMaxHstFields> u{};
    for (size_t i = 0; i < n; ++i) {
      scale(s, {&s.warm[i * dims_], dims_}, u);
      for (size_t t = 0; t < trees_.size(); ++t) ++s.ref[t * nodes_ + leafOf(trees_[t], u)];
    }
    for (size_t t = 0; t < trees_.size(); ++t) sumUp(&s.ref[t * nodes_]);
    s.learned = 0;
    for (size_t i = 0; i < n; ++i) {
      scale(s, {&s.warm[i * dims_], dims_}, u);
      learnLevel(s, logMass(s, u, /*leave_out=*/true, nullptr));
    }
    std::vector<double>().swap(s.warm);
  }

  /// The window just filled becomes the reference.
  void swapReference(Series& s) const {
    for (size_t t = 0; t < trees_.size(); ++t) {
      uint16_t* counts = &s.ref[t * nodes_];
      std::copy_n(&s.latest[t * leaves_], leaves_, counts + first_leaf_);
      std::fill_n(&s.latest[t * leaves_], leaves_, uint16_t{0});
      sumUp(counts);
    }
    s.in_window = 0;
  }

  /// Each internal node's count = its children's (the leaves are set).
  void sumUp(uint16_t* counts) const {
    for (uint32_t node = first_leaf_; node-- > 0;)
      counts[node] = static_cast<uint16_t>(counts[2 * node + 1] + counts[2 * node + 2]);
  }

  void saveLeaves(StateEncoder& e, const uint16_t* leaves) const {
    uint32_t used = 0;
    for (uint32_t i = 0; i < leaves_; ++i) used += leaves[i] != 0;
    e.u32(used);
    for (uint32_t i = 0; i < leaves_; ++i)
      if (leaves[i]) e.u32(i << 16 | leaves[i]);
  }

  bool restoreLeaves(StateDecoder& d, uint16_t* leaves, uint32_t& total) const {
    const uint32_t used = d.u32();
    if (!d.ok() || used > leaves_) return false;
    for (uint32_t i = 0; i < used; ++i) {
      const uint32_t packed = d.u32();
      const uint32_t leaf = packed >> 16, count = packed & 0xffff;
      if (!d.ok() || leaf >= leaves_ || count == 0 || leaves[leaf]) return false;
      leaves[leaf] = static_cast<uint16_t>(count);
      total += count;
    }
    return total <= kMaxHstHistory;
  }

  std::vector<std::string> fields_;
  uint32_t dims_, depth_, window_, warmup_;
  double alpha_, threshold_, min_deviation_;
  uint32_t nodes_, leaves_, first_leaf_;
  std::vector<Tree> trees_;
  std::vector<Series> series_;
};

}  // namespace

std::unique_ptr<Detector> makeHalfSpaceTrees(const DetectSpec& spec) {
  return std::make_unique<HalfSpaceTrees>(spec);
}

}  // namespace ganglion::edge
