// A list of RE2 patterns matched together, for the guards (prompt_guard, output_guard): RE2
// matches in time linear in the text whatever the pattern, so no text can make a pattern
// backtrack.
#pragma once

#include <re2/re2.h>
#include <re2/set.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/reader.h"

namespace ganglion::filters {

/// A list of patterns matched together (one pass over a text for all of them); each pattern is
/// also kept alone, for the rare text whose match needs more memory than the set's DFA has.
class PatternList {
 public:
  bool empty() const { return single_.empty(); }
  /// Adds a pattern; its compile error, if any.
  std::optional<std::string> add(const std::string& pattern) {
    auto re = std::make_unique<RE2>(pattern, options());
    if (!re->ok()) return re->error();
    std::string error;
    if (set_.Add(pattern, &error) < 0) return error;
    single_.push_back(std::move(re));
    return std::nullopt;
  }
  bool compile() { return empty() || set_.Compile(); }
  /// Whether any pattern matches somewhere in `text`. Any thread.
  bool matches(std::string_view text) const {
    RE2::Set::ErrorInfo info{};
    if (set_.Match(text, nullptr, &info)) return true;
    if (info.kind == RE2::Set::kNoError) return false;
    for (const auto& re : single_)  // the set's DFA ran out of memory: one at a time (NFA fallback)
      if (RE2::PartialMatch(text, *re)) return true;
    return false;
  }

 private:
  static RE2::Options options() {
    RE2::Options o;
    o.set_log_errors(false);
    return o;
  }
  RE2::Set set_{options(), RE2::UNANCHORED};
  std::vector<std::unique_ptr<RE2>> single_;
};

/// Whether a pattern list may hold a pattern that matches an empty text (one that matches
/// every text it is shown).
enum class EmptyMatch { kAllow, kRefuse };

/// Reads a config list of patterns into `patterns` (compiled together) and their texts into
/// `texts`; errors in `r`, named by `where` ("prompt_guard deny"). Patterns are taken as
/// written (no ${VAR} expansion: '$' and '{' are regex syntax). Config load.
void readPatternList(config::Reader& r, const config::Node& list, std::string_view where,
                     PatternList& patterns, std::vector<std::string>& texts,
                     EmptyMatch empty = EmptyMatch::kAllow);

}  // namespace ganglion::filters
