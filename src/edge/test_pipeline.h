// Unit tests' harness for a pipeline: build it from a spec, push readings, collect what
// leaves it. Test code only.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edge/pipeline.h"

namespace ganglion::edge::test_support {

inline std::shared_ptr<FieldNames> standardNames() {
  auto names = std::make_shared<FieldNames>();
  internStandardFields(*names);
  return names;
}

/// A pipeline under test with everything that leaves it collected.
struct Harness {
  explicit Harness(PipelineSpec spec) : names(standardNames()) {
    for (const auto& f : pipelineFieldNames(spec)) names->intern(f, FieldNames::Type::kNumber);
    auto built = buildPipeline(spec, names);
    EXPECT_TRUE(built.ok()) << (built.ok() ? "" : built.error().message);
    pipeline = std::move(*built);
    pipeline->setOutput([this](const Batch& b, const Pipeline&) {
      for (const Record& r : b.records) out.copyFrom(b, r);
    });
    source = pipeline->origin("plant");
  }
  void reading(std::string_view device, std::string_view metric, int64_t ts, double v, int64_t wall = 0,
               std::string_view src = "plant", Quality quality = Quality::kGood, uint64_t seq = 0) {
    Batch b;
    Record r;
    r.seq = seq;
    pipeline->series().setClock(wall);
    r.series = pipeline->series().intern(src, device, metric);
    r.ts = ts;
    r.value = v;
    r.origin = source;
    r.quality = quality;
    b.push(r);
    pipeline->push(b, wall);
  }
  double field(const Record& r, std::string_view name) const {
    const Field* f = out.findField(r, names->find(name));
    return f ? f->number : NAN;
  }
  std::string text(const Record& r, std::string_view name) const {
    const Field* f = out.findField(r, names->find(name));
    return f ? std::string(out.textOf(*f)) : "";
  }
  std::vector<Record> ofKind(RecordKind k) const {
    std::vector<Record> v;
    for (const Record& r : out.records)
      if (r.kind == k) v.push_back(r);
    return v;
  }

  std::shared_ptr<FieldNames> names;
  std::unique_ptr<Pipeline> pipeline;
  uint16_t source = 0;
  Batch out;
};

}  // namespace ganglion::edge::test_support
