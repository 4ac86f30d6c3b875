// `filter: "<condition>"`: keeps the records for which the condition is true.
#pragma once

#include "edge/expr/expr.h"
#include "edge/stages/stage.h"

namespace ganglion::edge {

class FilterStage final : public Stage {
 public:
  explicit FilterStage(expr::Program condition) : condition_(std::move(condition)) {}
  void process(Batch& batch, StageContext& ctx) override;
  std::string_view kind() const override { return "filter"; }

 private:
  expr::Program condition_;
};

}  // namespace ganglion::edge
