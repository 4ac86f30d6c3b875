// JSON text for people and simple tools: boost::json::serialize writes every double in
// scientific form (0 as "0E0", 0.017 as "1.7E-2"), which is valid JSON but trips up grep,
// awk and some dashboards. The admin API's answers are written with jsonText instead.
#pragma once

#include <boost/json/value.hpp>
#include <string>

namespace ganglion {

/// `v` as compact JSON text, as boost::json::serialize writes it but for doubles: their
/// shortest form that reads back the same (`0`, `0.017`, `1e+20`; `null` when not finite).
/// Any thread.
std::string jsonText(const boost::json::value& v);

}  // namespace ganglion
