#include "edge/stopped_parts.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <system_error>

#include "base/log.h"
#include "edge/edge_config.h"
#include "edge/state/state_file.h"

namespace ganglion::edge {
namespace json = boost::json;

namespace {

constexpr std::string_view kParts[] = {"pipelines", "connectors", "sinks"};

/// Whether `cfg` has a part of that kind and name.
bool configHas(const EdgeConfig& cfg, std::string_view part, std::string_view name) {
  auto named = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& x) { return x.name == name; });
  };
  if (part == "pipelines") return named(cfg.pipelines);
  if (part == "connectors") return named(cfg.connectors);
  if (part == "sinks") return named(cfg.sinks);
  return false;
}

}  // namespace

bool StoppedParts::knownPart(std::string_view part) {
  return std::find(std::begin(kParts), std::end(kParts), part) != std::end(kParts);
}

std::string_view StoppedParts::singular(std::string_view part) { return part.substr(0, part.size() - 1); }

void StoppedParts::load(const std::filesystem::path& dir, const EdgeConfig& cfg) {
  if (!loaded_) {
    loaded_ = true;
    file_ = dir / "stopped.state";
    auto body = readStateFile(file_);
    auto read = body ? decode(*body) : Result<std::set<std::pair<std::string, std::string>>>(body.error());
    if (!read)
      logLine(
          fmt::format("edge: {} not used, nothing stays stopped: {}", file_.string(), read.error().message));
    else
      stopped_ = std::move(*read);
    for (const auto& [part, name] : stopped_)
      if (configHas(cfg, part, name))
        logLine(
            fmt::format("edge: {} '{}' stays stopped (stopped through the admin API; POST "
                        "/edge/{}/{}/start starts it)",
                        singular(part), name, part, name));
  }
  const size_t before = stopped_.size();
  std::erase_if(stopped_, [&](const auto& p) { return !configHas(cfg, p.first, p.second); });
  bool changed = stopped_.size() != before;
  if (dir / "stopped.state" != file_) {  // edge.data_dir moved: the set goes with the queues
    std::error_code ec;
    std::filesystem::remove(file_, ec);
    file_ = dir / "stopped.state";
    changed = true;
  }
  if (changed)
    if (auto saved = save(); !saved) logLine("edge: " + saved.error().message);
}

bool StoppedParts::contains(std::string_view part, std::string_view name) const {
  return stopped_.count({std::string(part), std::string(name)}) > 0;
}

bool StoppedParts::set(std::string_view part, std::string_view name, bool stopped) {
  std::pair<std::string, std::string> key(part, name);
  if (stopped) return stopped_.insert(std::move(key)).second;
  return stopped_.erase(key) > 0;
}

Result<void> StoppedParts::save() const {
  if (file_.empty()) return {};
  if (stopped_.empty()) {
    std::error_code ec;
    std::filesystem::remove(file_, ec);
    if (ec) return Error(fmt::format("cannot remove {}: {}", file_.string(), ec.message()));
    return {};
  }
  return writeStateFile(file_, encode(stopped_));
}

std::string StoppedParts::encode(const std::set<std::pair<std::string, std::string>>& stopped) {
  json::object o;
  for (auto part : kParts) {
    json::array names;
    for (const auto& [p, name] : stopped)
      if (p == part) names.emplace_back(name);
    o[part] = std::move(names);
  }
  return json::serialize(o);
}

Result<std::set<std::pair<std::string, std::string>>> StoppedParts::decode(std::string_view body) {
  std::set<std::pair<std::string, std::string>> out;
  if (body.empty()) return out;  // no file
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return Error("it is not a JSON object");
  for (const auto& [key, names] : v.as_object()) {
    if (!knownPart(key)) return Error(fmt::format("it names '{}', not pipelines, connectors or sinks", key));
    if (!names.is_array()) return Error(fmt::format("its '{}' is not a list", std::string_view(key)));
    for (const auto& n : names.as_array()) {
      if (!n.is_string() || n.as_string().empty())
        return Error(fmt::format("its '{}' holds something other than a name", std::string_view(key)));
      out.emplace(std::string(key), std::string(n.as_string()));
    }
  }
  return out;
}

}  // namespace ganglion::edge
