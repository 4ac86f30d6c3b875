#include "base/bounded_json.h"

#include <fmt/format.h>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <cctype>
#include <unordered_set>

namespace ganglion {

namespace {

struct JsonShape {
  size_t containers = 0;  ///< objects and arrays
  size_t values = 1;  ///< at most this many values of any kind (each but a container's first follows a comma)
};

/// Calls `visit(ch)` for each character of JSON text outside its strings, until it returns
/// false: a linear scan that allocates nothing.
template <class Visit>
void outsideStrings(std::string_view text, Visit visit) {
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (in_string) {
      if (ch == '\\')
        ++i;
      else if (ch == '"')
        in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (!visit(ch)) {
      return;
    }
  }
}

/// Counts the structure of JSON text (brackets and commas outside strings), stopping once a
/// limit is passed.
JsonShape measureJson(std::string_view text, const JsonBounds& bounds) {
  JsonShape shape;
  outsideStrings(text, [&](char ch) {
    if (ch == '{' || ch == '[') {
      ++shape.containers;
      ++shape.values;
    } else if (ch == ',') {
      ++shape.values;
    }
    return shape.containers <= bounds.max_containers && shape.values <= bounds.max_values;
  });
  return shape;
}

/// Keys written in JSON text: its colons outside strings (each follows a key).
size_t keysInText(std::string_view text) {
  size_t keys = 0;
  outsideStrings(text, [&](char ch) {
    keys += ch == ':';
    return true;
  });
  return keys;
}

/// Keys held by the objects of a parsed value (depth bounded by the parse).
size_t keysInValue(const boost::json::value& v) {
  size_t keys = 0;
  if (const auto* o = v.if_object()) {
    keys += o->size();
    for (const auto& kv : *o) keys += keysInValue(kv.value());
  } else if (const auto* a = v.if_array()) {
    for (const auto& e : *a) keys += keysInValue(e);
  }
  return keys;
}

}  // namespace

BoundedJson parseBoundedJson(std::string_view text, const JsonBounds& bounds,
                             boost::json::storage_ptr storage) {
  BoundedJson out;
  // Every value takes at least one byte: text no longer than both limits cannot break either,
  // so the usual small body skips the scan.
  if (text.size() > std::min(bounds.max_containers, bounds.max_values)) {
    const JsonShape shape = measureJson(text, bounds);
    if (shape.containers > bounds.max_containers) {
      out.fault = JsonFault::kTooManyContainers;
      return out;
    }
    if (shape.values > bounds.max_values) {
      out.fault = JsonFault::kTooManyValues;
      return out;
    }
  }
  boost::system::error_code ec;
  boost::json::parse_options options;
  options.max_depth = bounds.max_depth;
  boost::json::parser parser(boost::json::storage_ptr(), options);
  parser.reset(std::move(storage));
  out.at = parser.write(text.data(), text.size(), ec);
  if (ec) {
    out.fault = ec == boost::json::error::too_deep ? JsonFault::kTooDeep : JsonFault::kSyntax;
    out.reason = ec.message();
    return out;
  }
  out.value = parser.release();
  // The parser keeps the last of two equal keys: fewer keys parsed than written means one
  // was given twice (two linear passes; the slow search for which one only then).
  if (bounds.refuse_duplicate_keys && keysInValue(out.value) != keysInText(text)) {
    const auto found = findDuplicateKeys(text, 1);
    out.fault = JsonFault::kDuplicateKey;
    out.reason = found.empty()
                     ? "a key is given twice"
                     : fmt::format("key '{}' is given twice ({})", found.front().key, found.front().path);
    out.value = nullptr;
  }
  return out;
}

std::string jsonChildPath(std::string_view path, std::string_view key) {
  bool plain = !key.empty() && !std::isdigit(static_cast<unsigned char>(key.front()));
  for (char c : key) plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (plain) return fmt::format("{}.{}", path, key);
  return fmt::format("{}[{}]", path, boost::json::serialize(boost::json::string(key)));
}

namespace {

/// basic_parser handler that remembers the keys of each open object and the path to it.
class DuplicateKeyFinder {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  explicit DuplicateKeyFinder(size_t max) : max_(max) {}
  std::vector<JsonDuplicateKey> found;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    value();
    frames_.emplace_back().object = true;
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    frames_.pop_back();
    return true;
  }
  bool on_array_begin(boost::system::error_code&) {
    value();
    frames_.emplace_back().object = false;
    return true;
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    frames_.pop_back();
    return true;
  }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code& ec) {
    key_.append(s.data(), s.size());
    Frame& f = frames_.back();
    if (!f.keys.insert(key_).second) {
      found.push_back({jsonChildPath(path(frames_.size() - 1), key_), key_});
      if (found.size() >= max_) {
        ec = boost::json::error::extra_data;  // enough: stop here
        return false;
      }
    }
    f.key = std::move(key_);
    key_.clear();
    return true;
  }
  bool on_string_part(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(boost::json::string_view, std::size_t, boost::system::error_code&) { return value(); }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t, boost::json::string_view, boost::system::error_code&) { return value(); }
  bool on_uint64(std::uint64_t, boost::json::string_view, boost::system::error_code&) { return value(); }
  bool on_double(double, boost::json::string_view, boost::system::error_code&) { return value(); }
  bool on_bool(bool, boost::system::error_code&) { return value(); }
  bool on_null(boost::system::error_code&) { return value(); }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }

 private:
  struct Frame {
    bool object = false;
    size_t next_index = 0;  ///< arrays: the index the next value takes
    size_t index = 0;       ///< arrays: the index of the current value
    std::string key;        ///< objects: the current key
    std::unordered_set<std::string> keys;
  };
  /// A value starts in the innermost container: arrays count it.
  bool value() {
    if (!frames_.empty() && !frames_.back().object) frames_.back().index = frames_.back().next_index++;
    return true;
  }
  /// The path of the container at `depth` (0: the document).
  std::string path(size_t depth) const {
    std::string out = "$";
    for (size_t i = 0; i < depth; ++i) {
      const Frame& f = frames_[i];
      out = f.object ? jsonChildPath(out, f.key) : fmt::format("{}[{}]", out, f.index);
    }
    return out;
  }
  size_t max_;
  std::vector<Frame> frames_;
  std::string key_;
};

}  // namespace

std::vector<JsonDuplicateKey> findDuplicateKeys(std::string_view text, size_t max) {
  boost::json::parse_options options;
  options.max_depth = 1024;
  boost::json::basic_parser<DuplicateKeyFinder> parser(options, max);
  boost::system::error_code ec;
  parser.write_some(false, text.data(), text.size(), ec);
  return std::move(parser.handler().found);
}

}  // namespace ganglion
