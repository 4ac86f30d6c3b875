// The stack machine's instructions and the function table, shared by the compiler and the
// evaluator (private to edge/expr).
#pragma once

#include <cstdint>
#include <string_view>

#include "edge/expr/expr.h"

namespace ganglion::edge::expr {

enum class Op : uint8_t {
  kConst,  ///< push constants_[b]
  kValue,  ///< push the record's value (null when it has none)
  kTs,
  kDevice,
  kMetric,
  kSource,
  kQuality,
  kKind,
  kField,  ///< push field `a` of the record (null when it lacks it)
  kAttr,   ///< push attribute names_[b] (null when absent)
  kNeg,
  kNot,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAndJump,     ///< top not true: replace it by false and jump to b; else pop it
  kOrJump,      ///< top true: jump to b (leaving it); else pop it
  kToBool,      ///< top = whether top is true
  kJumpUnless,  ///< pop; jump to b unless it was true
  kJump,        ///< jump to b (always forward)
  kIn,          ///< pop x; push whether x equals one of constants_[b .. b+a); argc=1: negated
  kCall,        ///< pop argc values; push function a of them
};

enum class Fn : uint8_t {
  kAbs,
  kMin,
  kMax,
  kSqrt,
  kPow,
  kExp,
  kLog,
  kLog10,
  kRound,
  kFloor,
  kCeil,
  kClamp,
  kLower,
  kUpper,
  kLen,
  kContains,
  kStartsWith,
  kEndsWith,
  kIsNull,
  kCoalesce,
};

struct FunctionInfo {
  std::string_view name;
  Fn fn;
  uint8_t min_args;
  uint8_t max_args;
  Type arg_type;  ///< kAny: any
  Type result;    ///< kAny for coalesce: worked out from the arguments
};

inline constexpr FunctionInfo kFunctions[] = {
    {"abs", Fn::kAbs, 1, 1, Type::kNumber, Type::kNumber},
    {"min", Fn::kMin, 2, 8, Type::kNumber, Type::kNumber},
    {"max", Fn::kMax, 2, 8, Type::kNumber, Type::kNumber},
    {"sqrt", Fn::kSqrt, 1, 1, Type::kNumber, Type::kNumber},
    {"pow", Fn::kPow, 2, 2, Type::kNumber, Type::kNumber},
    {"exp", Fn::kExp, 1, 1, Type::kNumber, Type::kNumber},
    {"log", Fn::kLog, 1, 1, Type::kNumber, Type::kNumber},
    {"log10", Fn::kLog10, 1, 1, Type::kNumber, Type::kNumber},
    {"round", Fn::kRound, 1, 1, Type::kNumber, Type::kNumber},
    {"floor", Fn::kFloor, 1, 1, Type::kNumber, Type::kNumber},
    {"ceil", Fn::kCeil, 1, 1, Type::kNumber, Type::kNumber},
    {"clamp", Fn::kClamp, 3, 3, Type::kNumber, Type::kNumber},
    {"lower", Fn::kLower, 1, 1, Type::kString, Type::kString},
    {"upper", Fn::kUpper, 1, 1, Type::kString, Type::kString},
    {"len", Fn::kLen, 1, 1, Type::kString, Type::kNumber},
    {"contains", Fn::kContains, 2, 2, Type::kString, Type::kBool},
    {"starts_with", Fn::kStartsWith, 2, 2, Type::kString, Type::kBool},
    {"ends_with", Fn::kEndsWith, 2, 2, Type::kString, Type::kBool},
    {"is_null", Fn::kIsNull, 1, 1, Type::kAny, Type::kBool},
    {"coalesce", Fn::kCoalesce, 2, 8, Type::kAny, Type::kAny},
};

}  // namespace ganglion::edge::expr
