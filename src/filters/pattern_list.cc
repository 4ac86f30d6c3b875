#include "filters/pattern_list.h"

#include <fmt/format.h>

namespace ganglion::filters {

void readPatternList(config::Reader& r, const config::Node& list, std::string_view where,
                     PatternList& patterns, std::vector<std::string>& texts, EmptyMatch empty) {
  if (!list.IsSequence()) return r.fail(list, fmt::format("{} must be a list of patterns", where));
  for (const auto& n : list.items()) {
    if (!n.IsScalar()) {
      r.fail(n, fmt::format("{}: each pattern must be a string", where));
      continue;
    }
    if (auto error = patterns.add(n.Scalar()))
      r.fail(n, fmt::format("{}: invalid pattern '{}': {}", where, n.Scalar(), *error));
    else if (empty == EmptyMatch::kRefuse && RE2::FullMatch("", RE2(n.Scalar(), RE2::Quiet)))
      r.fail(n, fmt::format("{}: pattern '{}' matches an empty text, so it would withhold every response",
                            where, n.Scalar()));
    else
      texts.push_back(n.Scalar());
  }
  if (!patterns.compile()) r.fail(list, fmt::format("{}: the patterns do not compile together", where));
}

}  // namespace ganglion::filters
