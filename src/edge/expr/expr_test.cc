#include "edge/expr/expr.h"

#include <gtest/gtest.h>

#include <cmath>

namespace ganglion::edge::expr {
namespace {

class ExprTest : public ::testing::Test {
 protected:
  ExprTest() {
    rms_ = names_.intern("rms", FieldNames::Type::kNumber);
    score_ = names_.intern("score", FieldNames::Type::kNumber);
    detector_ = names_.intern("detector", FieldNames::Type::kText);
    attrs_ = names_.intern("attrs", FieldNames::Type::kText);
    names_.intern("min", FieldNames::Type::kNumber);
    scope_ = Scope{.names = &names_, .fields = {}, .all_fields = true, .attrs_field = attrs_};
    Record r;
    r.series = series_.intern("plant", "pump-1", "vibration");
    r.ts = 1764460800123;
    r.value = 0.25;
    batch_.push(r);
    batch_.addNumber(rms_, 4.5);
    batch_.addNumber(score_, 7);
    batch_.addText(detector_, "vib");
    std::string attrs;
    appendAttr(attrs, "site", "north", false);
    appendAttr(attrs, "line", "3", true);
    batch_.addText(attrs_, attrs);
  }

  Value eval(std::string_view text) {
    auto p = compile(text, scope_);
    EXPECT_TRUE(p.ok()) << text << ": " << (p.ok() ? "" : p.error().message);
    if (!p.ok()) return Value::null();
    programs_.push_back(std::move(*p));
    return evaluator_.run(programs_.back(), Input{&batch_.records[0], &batch_, &series_});
  }
  std::string error(std::string_view text, bool want_bool = false) {
    auto p = compile(text, scope_, want_bool);
    return p.ok() ? std::string("compiled") : p.error().message;
  }
  double number(std::string_view text) {
    const Value v = eval(text);
    EXPECT_EQ(v.type, Type::kNumber) << text;
    return v.number;
  }
  bool truth(std::string_view text) {
    const Value v = eval(text);
    EXPECT_EQ(v.type, Type::kBool) << text;
    return v.isTrue();
  }
  bool isNull(std::string_view text) { return eval(text).type == Type::kNull; }

  FieldNames names_;
  FieldId rms_, score_, detector_, attrs_;
  Scope scope_;
  SeriesTable series_;
  Batch batch_;
  Evaluator evaluator_;
  std::vector<Program> programs_;
};

TEST_F(ExprTest, ArithmeticAndPrecedence) {
  EXPECT_DOUBLE_EQ(number("1 + 2 * 3"), 7);
  EXPECT_DOUBLE_EQ(number("(1 + 2) * 3"), 9);
  EXPECT_DOUBLE_EQ(number("10 - 4 - 3"), 3);
  EXPECT_DOUBLE_EQ(number("100 / 10 / 5"), 2);
  EXPECT_DOUBLE_EQ(number("7 % 4"), 3);
  EXPECT_DOUBLE_EQ(number("-value * 4"), -1);
  EXPECT_DOUBLE_EQ(number("- -2"), 2);
  EXPECT_DOUBLE_EQ(number(".5 + 1e2"), 100.5);
  EXPECT_DOUBLE_EQ(number("rms * 2"), 9);
  EXPECT_DOUBLE_EQ(number("ts"), 1764460800123.0);
}

TEST_F(ExprTest, NullsFromBadArithmetic) {
  EXPECT_TRUE(isNull("value / 0"));
  EXPECT_TRUE(isNull("value % 0"));
  EXPECT_TRUE(isNull("sqrt(-1)"));
  EXPECT_TRUE(isNull("log(0)"));
  EXPECT_TRUE(isNull("1e308 * 10"));
  EXPECT_TRUE(isNull("null + 1"));
  EXPECT_TRUE(isNull("attrs.site + 1"));  // a string at run time
  EXPECT_TRUE(isNull("clamp(1, 5, 2)"));
}

TEST_F(ExprTest, ComparisonsAndNull) {
  EXPECT_TRUE(truth("value > -1000 and value < 1000"));
  EXPECT_FALSE(truth("value > 1"));
  EXPECT_TRUE(truth("device == 'pump-1'"));
  EXPECT_TRUE(truth("device != \"pump-2\""));
  EXPECT_TRUE(truth("'abc' < 'abd'"));
  // Every comparison with null is false, != included.
  EXPECT_FALSE(truth("value / 0 > 1"));
  EXPECT_FALSE(truth("value / 0 < 1"));
  EXPECT_FALSE(truth("value / 0 == null"));
  EXPECT_FALSE(truth("value / 0 != 1"));
  EXPECT_TRUE(truth("not (value / 0 > 1)"));
  EXPECT_TRUE(truth("is_null(value / 0)"));
  EXPECT_FALSE(truth("is_null(value)"));
}

TEST_F(ExprTest, BooleanLogicShortCircuits) {
  EXPECT_TRUE(truth("true or value / 0 > 1"));
  EXPECT_FALSE(truth("false and value > 0"));
  EXPECT_TRUE(truth("not false && !false"));
  EXPECT_TRUE(truth("false || true"));
  EXPECT_FALSE(truth("attrs.missing or false"));  // null is not true
  EXPECT_FALSE(truth("attrs.site and true"));     // a string is not true
}

TEST_F(ExprTest, EventPrefixAttrsAndFields) {
  EXPECT_TRUE(truth("event.detector == 'vib' and event.score > 6"));
  EXPECT_TRUE(truth("record.rms == 4.5"));
  EXPECT_EQ(eval("attrs.site").view(), "north");
  EXPECT_DOUBLE_EQ(number("attrs.line + 1"), 4);
  EXPECT_TRUE(isNull("attrs.nope"));
  EXPECT_TRUE(isNull("min"));  // a known field this record lacks
  EXPECT_EQ(eval("metric").view(), "vibration");
  EXPECT_EQ(eval("source").view(), "plant");
  EXPECT_EQ(eval("quality").view(), "good");
  EXPECT_EQ(eval("kind").view(), "reading");
}

TEST_F(ExprTest, InListsAndTernary) {
  EXPECT_TRUE(truth("device in ['pump-0', 'pump-1']"));
  EXPECT_FALSE(truth("device not in ['pump-0', 'pump-1']"));
  EXPECT_TRUE(truth("score in [1, 7, -3]"));
  EXPECT_FALSE(truth("attrs.nope in ['a']"));
  EXPECT_FALSE(truth("attrs.nope not in ['a']"));
  EXPECT_DOUBLE_EQ(number("value > 0 ? 1 : 2"), 1);
  EXPECT_DOUBLE_EQ(number("value < 0 ? 1 : value > 0.2 ? 3 : 4"), 3);
  EXPECT_TRUE(isNull("value < 0 ? 1 : null"));
  EXPECT_DOUBLE_EQ(number("attrs.nope ? 1 : 2"), 2);
}

TEST_F(ExprTest, Functions) {
  EXPECT_DOUBLE_EQ(number("abs(-2.5)"), 2.5);
  EXPECT_DOUBLE_EQ(number("min(3, 1, 2)"), 1);
  EXPECT_DOUBLE_EQ(number("max(3, 1, 2)"), 3);
  EXPECT_DOUBLE_EQ(number("pow(2, 10)"), 1024);
  EXPECT_DOUBLE_EQ(number("round(2.5) + floor(1.7) + ceil(1.2)"), 3 + 1 + 2);
  EXPECT_DOUBLE_EQ(number("clamp(value * 100, 0, 10)"), 10);
  EXPECT_DOUBLE_EQ(number("log10(1000)"), 3);
  EXPECT_DOUBLE_EQ(number("len(device)"), 6);
  EXPECT_EQ(eval("upper(device)").view(), "PUMP-1");
  EXPECT_EQ(eval("lower('AbC')").view(), "abc");
  EXPECT_TRUE(truth("contains(device, 'mp') and starts_with(device, 'pu') and ends_with(device, '-1')"));
  EXPECT_TRUE(truth("lower(upper(device)) == device"));
  EXPECT_DOUBLE_EQ(number("coalesce(attrs.nope, value / 0, 5)"), 5);
  EXPECT_TRUE(isNull("abs(attrs.site)"));
}

TEST_F(ExprTest, StringEscapes) {
  EXPECT_EQ(eval(R"('it\'s')").view(), "it's");
  EXPECT_EQ(eval(R"("a\"b\\c\n")").view(), "a\"b\\c\n");
}

TEST_F(ExprTest, ErrorsNameTheColumn) {
  EXPECT_EQ(error("valu > 1"), "1:1: unknown field 'valu' (did you mean 'value'?)");
  EXPECT_EQ(error("value >\n  nope"), "2:3: unknown field 'nope'");
  EXPECT_EQ(error("value = 1"), "1:7: '=' is not an operator: compare with '=='");
  EXPECT_EQ(error("value > "), "1:9: expected a value, found end of expression");
  EXPECT_EQ(error("(value > 1"), "1:11: expected ')', found end of expression");
  EXPECT_EQ(error("value > 1 1"), "1:11: unexpected a number after the expression");
  EXPECT_EQ(error("'abc"), "1:1: string not closed");
  EXPECT_EQ(error("'a\\x'"), "1:3: unknown escape '\\x' (known: \\\\ \\' \\\" \\n \\t)");
  EXPECT_EQ(error("10s > 1"), "1:3: unexpected 's' after a number");
  EXPECT_EQ(error("1 < value < 3"), "1:11: comparisons do not chain: write 'a < b and b < c'");
  EXPECT_EQ(error("sqr(value)"), "1:1: unknown function 'sqr' (did you mean 'sqrt'?)");
  EXPECT_EQ(error("pow(value)"), "1:1: pow() takes 2 arguments");
  EXPECT_EQ(error("abs(1, 2)"), "1:1: abs() takes 1 argument");
  EXPECT_EQ(error("value # 2"), "1:7: unexpected '#'");
  EXPECT_EQ(error("value & 2"), "1:7: '&' is not an operator: use 'and'");
}

TEST_F(ExprTest, TypeErrors) {
  EXPECT_EQ(error("device + 1"), "1:8: arithmetic needs numbers, not a string");
  EXPECT_EQ(error("device == 1"), "1:8: compares a string with a number: never equal");
  EXPECT_EQ(error("device > 1"), "1:8: compares a string with a number");
  EXPECT_EQ(error("value and true"), "1:1: 'and' needs a condition (true or false), not a number");
  EXPECT_EQ(error("true < false"), "1:6: booleans have no order: compare with '==' or '!='");
  EXPECT_EQ(error("lower(value)"), "1:7: lower() needs a string, not a number");
  EXPECT_EQ(error("device in [1, 2]"), "1:12: the list holds a number but the value is a string");
  EXPECT_EQ(error("value + 1", true),
            "1:1: the expression must be a condition (true or false), not a number");
  EXPECT_EQ(error("detector", true), "1:1: the expression must be a condition (true or false), not a string");
  EXPECT_EQ(error("attrs.site", true), "compiled");  // decided at run time
}

TEST_F(ExprTest, FieldsOutOfScopeAreUnknown) {
  Scope narrow{.names = &names_, .fields = {rms_}, .all_fields = false, .attrs_field = attrs_};
  EXPECT_TRUE(compile("rms > 1", narrow).ok());
  auto p = compile("score > 1", narrow);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message, "1:1: unknown field 'score'");
}

TEST_F(ExprTest, LimitsRefuseHostileText) {
  std::string long_text(5000, ' ');
  long_text.push_back('1');
  EXPECT_EQ(error(long_text), "1:4097: the expression is longer than 4096 bytes");
  std::string deep(40, '(');
  deep.push_back('1');
  deep.append(40, ')');
  EXPECT_EQ(error(deep), "1:33: the expression nests deeper than 32 levels");
  std::string nots;
  for (int i = 0; i < 40; ++i) nots += "not ";
  EXPECT_NE(error(nots + "true").find("nests deeper than 32"), std::string::npos);
  std::string minus(40, '-');
  EXPECT_NE(error(minus + "value").find("nests deeper than 32"), std::string::npos);
  std::string wide = "value";
  for (int i = 0; i < 300; ++i) wide += " + 1";
  EXPECT_NE(error(wide).find("more than 256 terms"), std::string::npos);
  std::string list = "value in [";
  for (int i = 0; i < 70; ++i) list += std::to_string(i) + ",";
  list += "1]";
  EXPECT_NE(error(list).find("at most 64 values"), std::string::npos);
  // Right-nested sums go deep on the stack: refused before the machine could overflow.
  std::string right = "1";
  for (int i = 0; i < 31; ++i) {
    right.insert(0, "(1 + ");
    right.push_back(')');
  }
  EXPECT_EQ(error(right), "compiled");
}

TEST_F(ExprTest, ScratchSpaceIsBounded) {
  // upper() of strings that together exceed the scratch space gives null, not a write past it.
  std::string attrs;
  appendAttr(attrs, "big", std::string(3000, 'x'), false);
  Batch b;
  Record r;
  r.series = batch_.records[0].series;
  b.push(r);
  b.addText(attrs_, attrs);
  auto p = compile("upper(attrs.big) == upper(attrs.big)", scope_);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(evaluator_.test(*p, Input{&b.records[0], &b, &series_}));
  auto q = compile("len(upper(attrs.big))", scope_);
  ASSERT_TRUE(q.ok());
  EXPECT_DOUBLE_EQ(evaluator_.run(*q, Input{&b.records[0], &b, &series_}).number, 3000);
}

TEST_F(ExprTest, InfiniteValuesAndEmptyProgramsAreNull) {
  batch_.records[0].value = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(isNull("value"));
  EXPECT_FALSE(truth("value > 1000"));
  EXPECT_TRUE(isNull("-value"));
  auto p = compile("value", scope_);
  ASSERT_TRUE(p.ok());
  Program moved = std::move(*p);
  EXPECT_EQ(evaluator_.run(*p, Input{&batch_.records[0], &batch_, &series_}).type, Type::kNull);
  EXPECT_EQ(evaluator_.run(Program(), Input{&batch_.records[0], &batch_, &series_}).type, Type::kNull);
}

TEST_F(ExprTest, AttrsTextIsParsedDefensively) {
  std::string bad = "k";  // no terminator
  EXPECT_EQ(findAttr(bad, "k").type, Type::kNull);
  std::string half("k\0s", 3);
  EXPECT_EQ(findAttr(half, "k").type, Type::kNull);
  std::string notnum;
  appendAttr(notnum, "n", "12abc", true);
  EXPECT_EQ(findAttr(notnum, "n").type, Type::kNull);
}

TEST(ExprNames, ReservedNamesAreThoseTheLanguageReadsOtherwise) {
  for (std::string_view name : {"value", "ts", "device", "metric", "source", "quality", "kind", "and", "or",
                                "not", "in", "true", "false", "null", "event", "record", "attrs"})
    EXPECT_TRUE(isReservedName(name)) << name;
  for (std::string_view name : {"occupancy", "mean", "values", "attrs_x", "Event", ""})
    EXPECT_FALSE(isReservedName(name)) << name;
}

}  // namespace
}  // namespace ganglion::edge::expr
