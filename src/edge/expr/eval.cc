// The stack machine. One switch per instruction; jumps only go forward, so a program runs at
// most code_.size() steps. Nothing here allocates.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/strings.h"
#include "edge/expr/expr.h"
#include "edge/expr/ops.h"

namespace ganglion::edge::expr {
namespace {

Value number(double d) { return std::isfinite(d) ? Value::num(d) : Value::null(); }

bool equal(const Value& a, const Value& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case Type::kNumber:
    case Type::kBool:
      return a.number == b.number;
    case Type::kString:
      return a.view() == b.view();
    default:
      return false;
  }
}

/// -1, 0, 1, or 2 when the two have no order (null, different types, booleans).
int order(const Value& a, const Value& b) {
  if (a.type != b.type) return 2;
  if (a.type == Type::kNumber) return a.number < b.number ? -1 : a.number > b.number ? 1 : 0;
  if (a.type == Type::kString) {
    const int c = a.view().compare(b.view());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  return 2;
}

}  // namespace

Value Evaluator::load(const Instruction& ins, const Input& in) const {
  const Record& r = *in.record;
  switch (ins.op) {
    case Op::kValue:
      return r.hasValue() ? number(r.value) : Value::null();  // an infinite reading is null too
    case Op::kTs:
      return Value::num(static_cast<double>(r.ts));
    case Op::kDevice:
      return r.series == kNoSeries ? Value::null() : Value::string(in.series->device(r.series));
    case Op::kMetric:
      return r.series == kNoSeries ? Value::null() : Value::string(in.series->metric(r.series));
    case Op::kSource:
      return r.series == kNoSeries ? Value::null() : Value::string(in.series->source(r.series));
    case Op::kQuality:
      return Value::string(qualityName(r.quality));
    case Op::kKind:
      return Value::string(recordKindName(r.kind));
    case Op::kField: {
      const Field* f = in.batch->findField(r, ins.a);
      if (!f) return Value::null();
      return f->is_text ? Value::string(in.batch->textOf(*f)) : number(f->number);
    }
    default:
      return Value::null();
  }
}

Value Evaluator::stringResult(std::string_view s, bool upper) {
  if (s.size() > kScratchBytes - scratch_used_) return Value::null();
  char* out = scratch_.data() + scratch_used_;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    out[i] = upper ? ((c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c)
                   : ((c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c);
  }
  scratch_used_ += s.size();
  return Value::string(std::string_view(out, s.size()));
}

Value Evaluator::call(const Instruction& ins, Value* args) {
  const auto fn = static_cast<Fn>(ins.a);
  const size_t n = ins.argc;
  switch (fn) {
    case Fn::kIsNull:
      return Value::boolean(args[0].type == Type::kNull);
    case Fn::kCoalesce:
      for (size_t i = 0; i < n; ++i)
        if (args[i].type != Type::kNull) return args[i];
      return Value::null();
    case Fn::kLower:
    case Fn::kUpper:
      if (args[0].type != Type::kString) return Value::null();
      return stringResult(args[0].view(), fn == Fn::kUpper);
    case Fn::kLen:
      if (args[0].type != Type::kString) return Value::null();
      return Value::num(static_cast<double>(args[0].len));
    case Fn::kContains:
    case Fn::kStartsWith:
    case Fn::kEndsWith: {
      if (args[0].type != Type::kString || args[1].type != Type::kString) return Value::null();
      const std::string_view s = args[0].view(), t = args[1].view();
      if (fn == Fn::kContains) return Value::boolean(s.find(t) != std::string_view::npos);
      if (fn == Fn::kStartsWith) return Value::boolean(s.starts_with(t));
      return Value::boolean(s.ends_with(t));
    }
    default:
      break;
  }
  // The numeric functions: any argument that is not a number makes the result null.
  for (size_t i = 0; i < n; ++i)
    if (args[i].type != Type::kNumber) return Value::null();
  const double x = args[0].number;
  switch (fn) {
    case Fn::kAbs:
      return number(std::fabs(x));
    case Fn::kMin: {
      double m = x;
      for (size_t i = 1; i < n; ++i) m = std::min(m, args[i].number);
      return number(m);
    }
    case Fn::kMax: {
      double m = x;
      for (size_t i = 1; i < n; ++i) m = std::max(m, args[i].number);
      return number(m);
    }
    case Fn::kSqrt:
      return number(std::sqrt(x));
    case Fn::kPow:
      return number(std::pow(x, args[1].number));
    case Fn::kExp:
      return number(std::exp(x));
    case Fn::kLog:
      return number(std::log(x));
    case Fn::kLog10:
      return number(std::log10(x));
    case Fn::kRound:
      return number(std::round(x));
    case Fn::kFloor:
      return number(std::floor(x));
    case Fn::kCeil:
      return number(std::ceil(x));
    case Fn::kClamp: {
      const double lo = args[1].number, hi = args[2].number;
      if (lo > hi) return Value::null();
      return number(std::clamp(x, lo, hi));
    }
    default:
      return Value::null();
  }
}

Value Evaluator::run(const Program& p, const Input& in) {
  if (p.code_.empty()) return Value::null();  // a moved-from or default Program
  scratch_used_ = 0;
  Value* sp = stack_.data();  // next free slot
  const Instruction* code = p.code_.data();
  const size_t size = p.code_.size();
  size_t pc = 0;
  while (pc < size) {
    const Instruction& ins = code[pc++];
    switch (ins.op) {
      case Op::kConst:
        *sp++ = p.constants_[ins.b];
        break;
      case Op::kValue:
      case Op::kTs:
      case Op::kDevice:
      case Op::kMetric:
      case Op::kSource:
      case Op::kQuality:
      case Op::kKind:
      case Op::kField:
        *sp++ = load(ins, in);
        break;
      case Op::kAttr: {
        Value v = Value::null();
        if (const Field* f = in.batch->findField(*in.record, p.attrs_field_); f && f->is_text)
          v = findAttr(in.batch->textOf(*f), p.names_[ins.b]);
        *sp++ = v;
        break;
      }
      case Op::kNeg:
        sp[-1] = sp[-1].type == Type::kNumber ? Value::num(-sp[-1].number) : Value::null();
        break;
      case Op::kNot:
        sp[-1] = Value::boolean(!sp[-1].isTrue());
        break;
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
      case Op::kMod: {
        const Value b = *--sp;
        Value& a = sp[-1];
        if (a.type != Type::kNumber || b.type != Type::kNumber) {
          a = Value::null();
          break;
        }
        const double x = a.number, y = b.number;
        switch (ins.op) {
          case Op::kAdd:
            a = number(x + y);
            break;
          case Op::kSub:
            a = number(x - y);
            break;
          case Op::kMul:
            a = number(x * y);
            break;
          case Op::kDiv:
            a = y == 0 ? Value::null() : number(x / y);
            break;
          default:
            a = y == 0 ? Value::null() : number(std::fmod(x, y));
            break;
        }
        break;
      }
      case Op::kEq:
      case Op::kNe: {
        const Value b = *--sp;
        Value& a = sp[-1];
        if (a.type == Type::kNull || b.type == Type::kNull) {
          a = Value::boolean(false);
          break;
        }
        const bool same = equal(a, b);
        a = Value::boolean(ins.op == Op::kEq ? same : !same);
        break;
      }
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        const Value b = *--sp;
        Value& a = sp[-1];
        const int c = order(a, b);
        bool result = false;
        if (c != 2) {
          switch (ins.op) {
            case Op::kLt:
              result = c < 0;
              break;
            case Op::kLe:
              result = c <= 0;
              break;
            case Op::kGt:
              result = c > 0;
              break;
            default:
              result = c >= 0;
              break;
          }
        }
        a = Value::boolean(result);
        break;
      }
      case Op::kAndJump:
        if (!sp[-1].isTrue()) {
          sp[-1] = Value::boolean(false);
          pc = ins.b;
        } else {
          --sp;
        }
        break;
      case Op::kOrJump:
        if (sp[-1].isTrue())
          pc = ins.b;
        else
          --sp;
        break;
      case Op::kToBool:
        sp[-1] = Value::boolean(sp[-1].isTrue());
        break;
      case Op::kJumpUnless:
        if (!(--sp)->isTrue()) pc = ins.b;
        break;
      case Op::kJump:
        pc = ins.b;
        break;
      case Op::kIn: {
        Value& x = sp[-1];
        if (x.type == Type::kNull) {
          x = Value::boolean(false);
          break;
        }
        bool found = false;
        for (uint32_t i = 0; i < ins.a && !found; ++i) found = equal(x, p.constants_[ins.b + i]);
        x = Value::boolean(ins.argc ? !found : found);
        break;
      }
      case Op::kCall: {
        sp -= ins.argc;
        *sp = call(ins, sp);
        ++sp;
        break;
      }
    }
  }
  return sp[-1];
}

void appendAttr(std::string& out, std::string_view key, std::string_view value, bool is_number) {
  out.append(key);
  out.push_back('\0');
  out.push_back(is_number ? 'n' : 's');
  out.append(value);
  out.push_back('\0');
}

bool nextAttr(std::string_view attrs, size_t& at, AttrEntry& out) {
  if (at >= attrs.size()) return false;
  const size_t key_end = attrs.find('\0', at);
  if (key_end == std::string_view::npos || key_end + 1 >= attrs.size()) return false;
  const size_t value_end = attrs.find('\0', key_end + 2);
  if (value_end == std::string_view::npos) return false;
  out.key = attrs.substr(at, key_end - at);
  out.value = attrs.substr(key_end + 2, value_end - key_end - 2);
  out.is_number = attrs[key_end + 1] == 'n';
  at = value_end + 1;
  return true;
}

Value findAttr(std::string_view attrs, std::string_view key) {
  size_t at = 0;
  AttrEntry e;
  while (nextAttr(attrs, at, e)) {
    if (e.key != key) continue;
    if (!e.is_number) return Value::string(e.value);
    const auto d = parseDouble(e.value);
    return d ? number(*d) : Value::null();
  }
  return Value::null();
}

}  // namespace ganglion::edge::expr
