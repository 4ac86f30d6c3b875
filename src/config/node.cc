#include "config/node.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>

#include "base/bounded_json.h"
#include "base/strings.h"

namespace ganglion::config {

namespace {
const std::string kEmpty;
}  // namespace

Node Node::null(int line, std::string path) {
  Node n;
  auto d = std::make_shared<Data>();
  d->kind = Kind::kNull;
  d->line = line;
  d->path = std::move(path);
  n.d_ = std::move(d);
  return n;
}

const std::string& Node::Scalar() const { return IsScalar() ? d_->scalar : kEmpty; }

const std::string& Node::path() const { return d_ ? d_->path : kEmpty; }

size_t Node::size() const {
  if (IsMap()) return d_->map.size();
  if (IsSequence()) return d_->sequence.size();
  return 0;
}

Node Node::operator[](std::string_view key) const {
  if (!IsMap()) return {};
  for (const auto& [k, v] : d_->map)
    if (k.IsScalar() && k.Scalar() == key) return v;
  return {};
}

const Node::Entry* Node::begin() const { return IsMap() ? d_->map.data() : nullptr; }
const Node::Entry* Node::end() const { return IsMap() ? d_->map.data() + d_->map.size() : nullptr; }

std::span<const Node> Node::items() const {
  if (!IsSequence()) return {};
  return d_->sequence;
}

/// Builds trees within the value and depth limits.
class TreeBuilder {
 public:
  std::optional<TreeError> error;

  /// `key_line`: for a map's value, its key's line (yaml-cpp places an empty value, as in
  /// `filter:` at the end of a line, on the next token, often the next entry's line).
  Node yaml(const YAML::Node& y, size_t depth, int key_line = 0) {
    int line = y.Mark().line >= 0 ? y.Mark().line + 1 : 0;
    if (key_line && y.Type() == YAML::NodeType::Null) line = key_line;
    if (!admit(depth, line, {})) return {};
    auto d = std::make_shared<Node::Data>();
    d->line = line;
    switch (y.Type()) {
      case YAML::NodeType::Undefined:
        return {};
      case YAML::NodeType::Null:
        d->kind = Node::Kind::kNull;
        break;
      case YAML::NodeType::Scalar:
        if (!admitText(y.Scalar().size(), line, {})) return {};
        if (!isValidUtf8(y.Scalar())) {
          // Names and values reach JSON (/config), metric labels and logs, which need UTF-8.
          error = TreeError{line, {}, "the text is not valid UTF-8"};
          return {};
        }
        d->kind = Node::Kind::kScalar;
        d->scalar = y.Scalar();
        break;
      case YAML::NodeType::Sequence:
        d->kind = Node::Kind::kSequence;
        d->sequence.reserve(y.size());
        for (const auto& item : y) {
          d->sequence.push_back(yaml(item, depth + 1));
          if (error) return {};
        }
        break;
      case YAML::NodeType::Map:
        d->kind = Node::Kind::kMap;
        d->map.reserve(y.size());
        for (const auto& kv : y) {
          Node key = yaml(kv.first, depth + 1);
          Node value = yaml(kv.second, depth + 1, key.line());
          if (error) return {};
          d->map.emplace_back(std::move(key), std::move(value));
        }
        break;
    }
    return wrap(std::move(d));
  }

  Node json(const boost::json::value& v, const std::string& path, size_t depth) {
    if (!admit(depth, 0, path)) return {};
    auto d = std::make_shared<Node::Data>();
    d->path = path;
    switch (v.kind()) {
      case boost::json::kind::null:
        d->kind = Node::Kind::kNull;
        break;
      case boost::json::kind::bool_:
        d->kind = Node::Kind::kScalar;
        d->scalar = v.get_bool() ? "true" : "false";
        break;
      case boost::json::kind::int64:
        d->kind = Node::Kind::kScalar;
        d->scalar = std::to_string(v.get_int64());
        break;
      case boost::json::kind::uint64:
        d->kind = Node::Kind::kScalar;
        d->scalar = std::to_string(v.get_uint64());
        break;
      case boost::json::kind::double_:
        d->kind = Node::Kind::kScalar;
        d->scalar = fmt::format("{}", v.get_double());  // shortest form that reads back: 0.15, 1e+30
        break;
      case boost::json::kind::string:
        if (!admitText(v.get_string().size(), 0, path)) return {};
        d->kind = Node::Kind::kScalar;
        d->scalar = std::string(v.get_string());
        break;
      case boost::json::kind::array: {
        d->kind = Node::Kind::kSequence;
        const auto& a = v.get_array();
        d->sequence.reserve(a.size());
        for (size_t i = 0; i < a.size(); ++i) {
          d->sequence.push_back(json(a[i], fmt::format("{}[{}]", path, i), depth + 1));
          if (error) return {};
        }
        break;
      }
      case boost::json::kind::object: {
        d->kind = Node::Kind::kMap;
        const auto& o = v.get_object();
        d->map.reserve(o.size());
        for (const auto& kv : o) {
          const std::string child = childPath(path, kv.key());
          if (!admitText(kv.key().size(), 0, child)) return {};
          auto key = std::make_shared<Node::Data>();
          key->kind = Node::Kind::kScalar;
          key->scalar = std::string(kv.key());
          key->path = child;
          Node value = json(kv.value(), child, depth + 1);
          if (error) return {};
          d->map.emplace_back(wrap(std::move(key)), std::move(value));
        }
        break;
      }
    }
    return wrap(std::move(d));
  }

 private:
  size_t values_ = 0;
  size_t bytes_ = 0;

  bool admitText(size_t size, int line, const std::string& path) {
    if (error) return false;
    bytes_ += size;
    if (bytes_ > kMaxTreeBytes)
      error = TreeError{line, path,
                        fmt::format("the config's text adds up to more than {} MiB (YAML aliases that "
                                    "repeat a long value count each time)",
                                    kMaxTreeBytes >> 20)};
    return !error;
  }

  bool admit(size_t depth, int line, const std::string& path) {
    if (error) return false;
    if (++values_ > kMaxTreeValues)
      error = TreeError{line, path,
                        fmt::format("the config holds more than {} values (maps, lists and scalars; "
                                    "YAML aliases count each time they repeat a value)",
                                    kMaxTreeValues)};
    else if (depth > kMaxTreeDepth)
      error = TreeError{line, path, fmt::format("the config nests deeper than {} levels", kMaxTreeDepth)};
    return !error;
  }

  static Node wrap(std::shared_ptr<Node::Data> d) {
    Node n;
    n.d_ = std::move(d);
    return n;
  }

  static std::string childPath(const std::string& path, std::string_view key) {
    return jsonChildPath(path, key);
  }
};

std::variant<Node, TreeError> fromYaml(const YAML::Node& root) {
  TreeBuilder b;
  Node n = b.yaml(root, 0);
  if (b.error) return *b.error;
  return n;
}

std::variant<Node, TreeError> fromJson(const boost::json::value& root, std::string root_path) {
  TreeBuilder b;
  Node n = b.json(root, root_path, 0);
  if (b.error) return *b.error;
  return n;
}

}  // namespace ganglion::config
