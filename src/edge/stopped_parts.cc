#include "edge/stopped_parts.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <system_error>

#include "base/log.h"
#include "base/strings.h"
#include "edge/edge_config.h"
#include "edge/state/state_file.h"

namespace ganglion::edge {
namespace json = boost::json;

namespace {

constexpr std::string_view kParts[] = {"pipelines", "connectors", "sinks"};
/// A larger file is not read: no set the admin API writes comes near it (names are short).
constexpr uintmax_t kMaxFileBytes = 1u << 20;

/// `name` as one path segment (what to type in a URL: "a/b" is "a%2Fb").
std::string pathSegment(std::string_view name) {
  std::string out;
  for (const unsigned char c : name) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out.push_back(static_cast<char>(c));
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

}  // namespace

bool StoppedParts::configHas(const EdgeConfig& cfg, std::string_view part, std::string_view name) {
  auto named = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& x) { return x.name == name; });
  };
  if (part == "pipelines") return named(cfg.pipelines);
  if (part == "connectors") return named(cfg.connectors);
  if (part == "sinks") return named(cfg.sinks);
  return false;
}

bool StoppedParts::knownPart(std::string_view part) {
  return std::find(std::begin(kParts), std::end(kParts), part) != std::end(kParts);
}

std::string_view StoppedParts::singular(std::string_view part) { return part.substr(0, part.size() - 1); }

void StoppedParts::load(const std::filesystem::path& dir, const EdgeConfig& cfg) {
  if (!loaded_) {
    loaded_ = true;
    file_ = dir / "stopped.state";
    std::error_code size_ec;
    const uintmax_t size = std::filesystem::file_size(file_, size_ec);
    auto body = !size_ec && size > kMaxFileBytes
                    ? Result<std::string>(Error(fmt::format("it is larger than {} bytes", kMaxFileBytes)))
                    : readStateFile(file_);
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
                        singular(part), printableText(name, 200), part, pathSegment(name)));
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
