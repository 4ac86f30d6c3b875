// The expression language of filters, maps and rules (docs/edge.md, "Expressions").
//
//   value > -1000 and value < 1000
//   event.detector == 'vib' and event.score > 6
//   lower(device) in ['pump-1', 'pump-2'] ? clamp(value * 0.1, 0, 100) : null
//
// compile() turns the text into a flat program for a small stack machine, once, at config
// load; errors carry the line and column. A program has no loops or calls back into itself,
// so it always ends, after at most as many steps as it has instructions; it is bounded at
// compile time (kMaxNodes, kMaxDepth) and allocates nothing when it runs (strings made by
// lower/upper go into the evaluator's fixed scratch space). Missing fields, wrong types at run
// time, division by zero and non-finite results give null; every comparison with null is
// false.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "edge/record.h"

namespace ganglion::edge::expr {

inline constexpr size_t kMaxTextBytes = 4096;
inline constexpr size_t kMaxNodes = 256;
inline constexpr size_t kMaxDepth = 32;
inline constexpr size_t kMaxStack = 64;
inline constexpr size_t kScratchBytes = 4096;

/// Static types the compiler knows (kAny: decided at run time, such as an attribute).
enum class Type : uint8_t { kAny, kNull, kBool, kNumber, kString };
std::string_view typeName(Type t);

/// A value at run time. Strings are views: into the program's constants, the record's batch or
/// series table, or the evaluator's scratch space; valid until the next run.
struct Value {
  double number = 0;
  const char* str = nullptr;
  uint32_t len = 0;
  Type type = Type::kNull;

  static Value null() { return {}; }
  static Value boolean(bool b) { return {b ? 1.0 : 0.0, nullptr, 0, Type::kBool}; }
  static Value num(double d) { return {d, nullptr, 0, Type::kNumber}; }
  static Value string(std::string_view s) {
    return {0, s.data(), static_cast<uint32_t>(s.size()), Type::kString};
  }
  bool isTrue() const { return type == Type::kBool && number != 0; }
  std::string_view view() const { return {str, len}; }
};

/// The names an expression may use: the record's own (value, ts, device, metric, source,
/// quality, kind), the fields of `names` listed in `fields` (what the stages before this
/// point produce; all of them when `all_fields`), and `attrs.<name>`. `event.` and `record.`
/// in front of a name are allowed and mean the record itself (rules read better with them).
struct Scope {
  const FieldNames* names = nullptr;
  std::vector<FieldId> fields;
  bool all_fields = false;
  FieldId attrs_field = FieldNames::kNoField;  ///< the text field holding attributes; none: attrs.x is null
};

enum class Op : uint8_t;
struct Instruction {
  Op op;
  uint8_t argc = 0;
  uint16_t a = 0;
  uint32_t b = 0;
};

/// A compiled expression. Immutable; shared by the workers that run it.
class Program {
 public:
  Program() = default;
  Program(Program&&) = default;
  Program& operator=(Program&&) = default;
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  Type resultType() const { return result_type_; }
  const std::string& text() const { return text_; }
  size_t size() const { return code_.size(); }

 private:
  friend class Compiler;
  friend class Evaluator;
  std::string text_;
  std::vector<Instruction> code_;
  std::vector<Value> constants_;         // strings point into pool_
  std::unique_ptr<char[]> pool_;         // string constants and attribute names; never moves
  std::vector<std::string_view> names_;  // attribute names (views into pool_)
  FieldId attrs_field_ = FieldNames::kNoField;
  Type result_type_ = Type::kAny;
  size_t max_stack_ = 0;
};

/// Compiles `text` against `scope`. An error's message starts with "LINE:COLUMN: " (1-based,
/// in bytes). `want_bool`: the result must be a boolean (a filter, a rule's `when`).
/// Main thread (config load).
Result<Program> compile(std::string_view text, const Scope& scope, bool want_bool = false);

/// Whether an expression reads `name` as something other than a field: a record's own name
/// (`value`, `device`...), a keyword (`and`, `null`...), or a prefix (`event`, `record`,
/// `attrs`). A field so named could not be read. Any thread.
bool isReservedName(std::string_view name);

/// What a program reads when it runs: one record of a batch.
struct Input {
  const Record* record = nullptr;
  const Batch* batch = nullptr;
  const SeriesTable* series = nullptr;
};

/// Runs programs. Holds the stack and the scratch space, so one per thread (a pipeline owns
/// one). Pipeline's worker.
class Evaluator {
 public:
  Value run(const Program& program, const Input& in);
  /// Whether the program's result is true (null, false and non-booleans are not).
  bool test(const Program& program, const Input& in) { return run(program, in).isTrue(); }

 private:
  Value load(const Instruction& ins, const Input& in) const;
  Value call(const Instruction& ins, Value* args);
  Value stringResult(std::string_view s, bool upper);
  std::array<Value, kMaxStack> stack_;
  std::array<char, kScratchBytes> scratch_;
  size_t scratch_used_ = 0;
};

/// Attributes as records carry them in their `attrs` text field: entries of
/// `key \0 kind value \0`, kind 's' (text) or 'n' (a number in text). Appends one entry.
void appendAttr(std::string& out, std::string_view key, std::string_view value, bool is_number);
/// One attribute of an attributes text.
struct AttrEntry {
  std::string_view key;
  std::string_view value;  ///< as written (a number in text when is_number)
  bool is_number = false;
};
/// The entry at `at` of `attrs`, moving `at` past it; false at the end or at an entry that is
/// not well-formed (the walk stops there).
bool nextAttr(std::string_view attrs, size_t& at, AttrEntry& out);
/// The value of `key` in an attributes text, null when absent.
Value findAttr(std::string_view attrs, std::string_view key);

}  // namespace ganglion::edge::expr
