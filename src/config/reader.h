// Typed reads from a config tree (config/node.h: from a YAML file or a JSON body) that collect
// errors with their place (file and line, or JSON path) instead of throwing. Used by the
// config loader and by extension factories (filters) parsing their own blocks. Main thread
// only (config load).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "config/config.h"
#include "config/node.h"

namespace ganglion::config {

inline bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

/// The first control character of `s` other than tab (C0 or DEL), or nullptr.
inline const char* findControlCharacter(std::string_view s) {
  for (const char& c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return &c;
  }
  return nullptr;
}

class Reader {
 public:
  /// `expand_env`: ${VAR} in values is replaced from the environment (files the operator
  /// wrote); off for configs sent to the admin API, whose errors could echo a variable.
  explicit Reader(std::string file, bool expand_env = true)
      : file_(std::move(file)), expand_env_(expand_env) {}

  /// At most kMaxErrors, the last of them saying that more were left out.
  std::vector<ConfigError> errors;
  static constexpr size_t kMaxErrors = 1000;
  /// Longer messages (a value quoted in full) are cut to this many bytes.
  static constexpr size_t kMaxMessageBytes = 512;

  /// The file being read, as the errors name it.
  const std::string& file() const { return file_; }

  void fail(const config::Node& at, std::string message) { add(at.line(), at.path(), std::move(message)); }
  void failAt(const config::Place& at, std::string message) { add(at.line, at.path, std::move(message)); }

  /// Rejects keys outside `allowed`, so a typo is an error and not a silently ignored field.
  void checkKeys(const config::Node& map, std::initializer_list<std::string_view> allowed,
                 std::string_view where) {
    checkKeys(map, std::span<const std::string_view>(allowed.begin(), allowed.size()), where);
  }
  /// Fails on every key of `map` not in `allowed`, and on a key written twice (YAML parsers
  /// keep one of the two silently, and which one differs between them).
  void checkKeys(const config::Node& map, std::span<const std::string_view> allowed, std::string_view where) {
    if (!map.IsMap()) return;
    std::unordered_set<std::string_view> seen;  // linear: a map of 80,000 keys took 15 s
    for (const auto& kv : map) {
      const std::string& key = kv.first.Scalar();
      bool known = false;
      for (auto a : allowed) known = known || a == key;
      if (!known) fail(kv.first, fmt::format("unknown field '{}' in {}", key, where));
      if (!seen.insert(key).second)
        fail(kv.first, fmt::format("field '{}' is written twice in {}", key, where));
    }
  }

  /// A scalar with ${VAR} and ${VAR:-default} expanded from the environment.
  /// No control character but tab: values end up in request heads, paths and logs, where a
  /// CR or LF would split them (a `rewrite` that carried one split the upstream request).
  std::optional<std::string> str(const config::Node& node, std::string_view what) {
    if (!node.IsScalar()) {
      fail(node, fmt::format("{} must be a string", what));
      return std::nullopt;
    }
    auto value = expand(node, node.Scalar());
    if (!value) return value;
    if (const char* c = findControlCharacter(*value)) {
      fail(node, fmt::format("{} holds a control character (byte 0x{:02x}); write it on one line", what,
                             static_cast<unsigned char>(*c)));
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::string> expand(const config::Node& at, const std::string& raw) {
    if (!expand_env_) return raw;
    std::string out;
    size_t i = 0;
    while (i < raw.size()) {
      if (raw[i] == '$' && i + 1 < raw.size() && raw[i + 1] == '{') {
        size_t close = raw.find('}', i + 2);
        if (close == std::string::npos) {
          fail(at, "unterminated ${ in value");
          return std::nullopt;
        }
        std::string inner = raw.substr(i + 2, close - i - 2);
        std::optional<std::string> fallback;
        if (auto dash = inner.find(":-"); dash != std::string::npos) {
          fallback = inner.substr(dash + 2);
          inner.resize(dash);
        }
        const char* value = std::getenv(inner.c_str());
        if (value && *value) {
          out += value;
          // An error that quotes this value shows the reference instead: the environment
          // holds secrets (the admin token, provider keys) that errors must not repeat.
          if (std::strlen(value) >= 4 && std::none_of(substituted_.begin(), substituted_.end(),
                                                      [&](const auto& s) { return s.first == value; }))
            substituted_.emplace_back(value, "${" + inner + "}");
        } else if (fallback) {
          out += *fallback;
        } else {
          fail(at, fmt::format("environment variable '{}' is not set", inner));
          return std::nullopt;
        }
        i = close + 1;
      } else {
        out += raw[i++];
      }
    }
    return out;
  }

  template <typename Int>
  std::optional<Int> integer(const config::Node& node, std::string_view what, uint64_t min, uint64_t max) {
    auto s = str(node, what);
    if (!s) return std::nullopt;
    auto v = parseUint(*s);
    if (!v || *v < min || *v > max) {
      fail(node, fmt::format("{} must be an integer from {} to {}, got '{}'", what, min, max, *s));
      return std::nullopt;
    }
    return static_cast<Int>(*v);
  }

  /// The longest duration a config may hold.
  static constexpr Millis kMaxDuration = std::chrono::hours(87600);

  std::optional<Millis> duration(const config::Node& node, std::string_view what) {
    auto s = str(node, what);
    if (!s) return std::nullopt;
    auto d = parseDuration(*s);
    if (!d) {
      fail(node, fmt::format("{} must be a duration like 500ms, 10s or 2m, got '{}'", what, *s));
    } else if (*d > kMaxDuration) {
      // Deadlines add durations to clock readings in nanoseconds: past about 292 years they
      // wrap, and a "practically infinite" timeout would expire at once.
      fail(node, fmt::format("{} must be at most 87600h (10 years), got '{}'", what, *s));
      return std::nullopt;
    }
    return d;
  }

  std::optional<uint64_t> bytes(const config::Node& node, std::string_view what) {
    auto s = str(node, what);
    if (!s) return std::nullopt;
    auto b = parseByteSize(*s);
    if (!b) fail(node, fmt::format("{} must be a size like 1024, 64k or 10M, got '{}'", what, *s));
    return b;
  }

  std::optional<bool> boolean(const config::Node& node, std::string_view what) {
    auto s = str(node, what);
    if (!s) return std::nullopt;
    if (*s == "true" || *s == "yes" || *s == "on") return true;
    if (*s == "false" || *s == "no" || *s == "off") return false;
    fail(node, fmt::format("{} must be true or false, got '{}'", what, *s));
    return std::nullopt;
  }

  std::optional<HostPort> hostPort(const config::Node& node, std::string_view what) {
    auto s = str(node, what);
    if (!s) return std::nullopt;
    HostPort hp;
    std::string_view text = *s;
    size_t colon;
    if (!text.empty() && text.front() == '[') {
      size_t close = text.find(']');
      if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
        fail(node, fmt::format("{} must be host:port or [ipv6]:port, got '{}'", what, *s));
        return std::nullopt;
      }
      hp.host = std::string(text.substr(1, close - 1));
      colon = close + 1;
    } else {
      colon = text.rfind(':');
      if (colon == std::string_view::npos || colon == 0) {
        fail(node, fmt::format("{} must be host:port, got '{}'", what, *s));
        return std::nullopt;
      }
      hp.host = std::string(text.substr(0, colon));
    }
    auto port = parseUint(text.substr(colon + 1));
    if (!port || *port == 0 || *port > 65535) {
      fail(node, fmt::format("{} has an invalid port in '{}'", what, *s));
      return std::nullopt;
    }
    hp.port = static_cast<uint16_t>(*port);
    return hp;
  }

  template <typename Fn>
  void forEach(const config::Node& seq, std::string_view what, Fn&& fn) {
    if (!seq.IsDefined() || seq.IsNull()) return;
    if (!seq.IsSequence()) {
      fail(seq, fmt::format("{} must be a list", what));
      return;
    }
    for (const auto& item : seq.items()) fn(item);
  }

  HeaderOps headerOps(const config::Node& node, std::string_view what) {
    HeaderOps ops;
    if (!node.IsMap()) {
      fail(node, fmt::format("{} must be a map with 'add' and/or 'remove'", what));
      return ops;
    }
    checkKeys(node, {"add", "remove"}, what);
    if (auto add = node["add"]; add.IsDefined()) {
      if (!add.IsMap()) {
        fail(add, fmt::format("{}.add must be a map of header: value", what));
      } else {
        for (const auto& kv : add) {
          auto name = kv.first.Scalar();
          auto value = str(kv.second, fmt::format("header '{}' value", name));  // no CR or LF
          if (!isToken(name))
            fail(kv.first, fmt::format("'{}' is not a valid header name", name));
          else if (value)
            ops.add.emplace_back(toLower(name), *value);
        }
      }
    }
    forEach(node["remove"], std::string(what) + ".remove", [&](const config::Node& n) {
      if (auto name = str(n, "header name")) {
        if (!isToken(*name))
          fail(n, fmt::format("'{}' is not a valid header name", *name));
        else
          ops.remove.push_back(toLower(*name));
      }
    });
    return ops;
  }

 private:
  std::string file_;
  bool expand_env_;
  /// An expanded value → "${NAME}", once each (10,000 routes may name the same variable).
  std::vector<std::pair<std::string, std::string>> substituted_;

  void add(int line, const std::string& path, std::string message) {
    if (errors.size() > kMaxErrors) return;
    if (errors.size() == kMaxErrors) {
      errors.push_back(
          {file_, line, fmt::format("more than {} errors: the rest are not shown", kMaxErrors), path});
      return;
    }
    for (const auto& [value, reference] : substituted_)
      for (size_t at = message.find(value); at != std::string::npos;
           at = message.find(value, at + reference.size()))
        message.replace(at, value.size(), reference);
    if (message.size() > kMaxMessageBytes) {
      size_t cut = kMaxMessageBytes - 3;
      while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8
      message.resize(cut);
      message += "...";
    }
    errors.push_back({file_, line, std::move(message), path});
  }
};

}  // namespace ganglion::config
