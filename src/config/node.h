// The format-neutral tree that config readers read: maps, sequences, scalars and nulls, each
// with where it came from (a line of a file, or a JSON path in a body). A YAML file, a JSON
// body and, later, rows of a store become the same tree, so one schema validates them all
// (docs/design/config-schema.md). Built and read on the main thread, at load; immutable.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace YAML {
class Node;
}

namespace ganglion::config {

/// Where a value was written: its line in a file, or its JSON path in a body.
struct Place {
  int line = 0;      ///< 1-based; 0 when unknown or not from a file
  std::string path;  ///< "$.routes[0].upstream"; empty when not from JSON
};

class Node {
 public:
  enum class Kind { kUndefined, kNull, kScalar, kMap, kSequence };
  using Entry = std::pair<Node, Node>;  ///< a map's key and value

  /// An undefined node: what a lookup of an absent key gives.
  Node() = default;
  static Node null(int line = 0, std::string path = {});

  bool IsDefined() const { return kind() != Kind::kUndefined; }
  bool IsNull() const { return kind() == Kind::kNull; }
  bool IsScalar() const { return kind() == Kind::kScalar; }
  bool IsMap() const { return kind() == Kind::kMap; }
  bool IsSequence() const { return kind() == Kind::kSequence; }
  Kind kind() const { return d_ ? d_->kind : Kind::kUndefined; }

  /// A scalar's text (numbers and booleans of JSON as written: 12, 0.5, true); empty otherwise.
  const std::string& Scalar() const;
  /// Entries of a map, items of a sequence, 0 otherwise.
  size_t size() const;
  /// The value of `key` in a map (the first, if written twice); undefined when absent.
  Node operator[](std::string_view key) const;
  /// A map's entries in the order written (empty for other kinds).
  const Entry* begin() const;
  const Entry* end() const;
  /// A sequence's items (empty for other kinds).
  std::span<const Node> items() const;

  /// 1-based line in the source file; 0 when the node came from elsewhere or is undefined.
  int line() const { return d_ ? d_->line : 0; }
  /// JSON path ("$.routes[0].match") for nodes from a JSON body; empty otherwise.
  const std::string& path() const;
  Place place() const { return {line(), path()}; }

 private:
  struct Data {
    Kind kind = Kind::kUndefined;
    std::string scalar;
    std::vector<Entry> map;
    std::vector<Node> sequence;
    int line = 0;
    std::string path;
  };
  std::shared_ptr<const Data> d_;

  friend class TreeBuilder;
};

/// Why a source could not become a tree (aliases that expand past the limit, nesting too deep).
struct TreeError {
  int line = 0;
  std::string path;
  std::string message;
};

/// The most values (maps, sequences, scalars) one tree may hold, the most bytes of text its
/// scalars and keys may add up to, and its deepest nesting: a few YAML aliases can name a
/// billion values ("billion laughs") or repeat one long text thousands of times, and every
/// reader recurses. A config of 10,000 routes holds about 200,000 values and 1.3 MB of text.
constexpr size_t kMaxTreeValues = 1'000'000;
constexpr size_t kMaxTreeBytes = 16u << 20;
constexpr size_t kMaxTreeDepth = 128;

/// The tree of a parsed YAML document, lines from its marks. Aliases are followed (each use
/// counts toward kMaxTreeValues); a cycle or too many values is an error.
std::variant<Node, TreeError> fromYaml(const YAML::Node& root);
/// The tree of a JSON value, each node with its JSON path from `root_path` ("$").
std::variant<Node, TreeError> fromJson(const boost::json::value& root, std::string root_path = "$");

}  // namespace ganglion::config
