// libFuzzer target for the edge expression language (src/edge/expr/): compile() on hostile
// text, the programs it accepts run on records built from the data, and the attributes text
// (appendAttr/findAttr) on well-formed and on raw bytes.
//
// Input: the expression text is everything up to the first NUL byte (it may span lines, so
// errors report lines past the first); the bytes after it drive a batch of records (value with
// NaN/inf/huge, ts, series strings, quality, kind, the number fields rms/mean/score/count/min/
// max, the text fields detector/reason, and an attrs text built with appendAttr or made of raw
// bytes). Without a NUL the whole input is the expression and the records take defaults.
//
// What must hold:
//   - compile() never crashes; an error's message starts with "LINE:COLUMN: " (1-based, inside
//     the text); want_bool=true compiles exactly when want_bool=false does with a result type
//     of a boolean or any value (else both fail, with the same message or want_bool's own); a
//     narrower scope (fewer fields, no attrs) never accepts what the full scope refuses.
//   - a program has at most ~2 instructions a node (size() <= 4*kMaxNodes+8) and keeps its
//     text; it survives being moved (constants point into its pool).
//   - run() gives null, a boolean (0 or 1), a number that is not NaN, or a string, and never
//     a type other than the program's static result type (when that is known) or null; a
//     string's bytes are readable and lie in the batch's text, the series table's strings, the
//     evaluator (lower/upper scratch), the quality/kind names, or are no longer than the
//     program text (a constant); test() == run().isTrue(); runs repeat exactly, on the same
//     evaluator, on another, and on the record copied into another batch (Batch::copyFrom).
//   - findAttr() on raw bytes with raw keys returns null, a finite number, or a string that is
//     a value slot of those bytes (after `key \0 kind`, before a NUL, kind not 'n'); on a text
//     built with appendAttr it finds the first entry of each key with its value.
// Run by scripts/fuzz.sh; a failed check calls __builtin_trap() so libFuzzer saves the input.
// GANGLION_FUZZ_TRACE=1 prints what compiled (or the error) and every run's result.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "edge/expr/expr.h"
#include "edge/record.h"
#include "fuzz_check.h"

namespace expr = ganglion::edge::expr;
using ganglion::edge::Batch;
using ganglion::edge::FieldId;
using ganglion::edge::FieldNames;
using ganglion::edge::kNoSeries;
using ganglion::edge::Quality;
using ganglion::edge::qualityName;
using ganglion::edge::Record;
using ganglion::edge::RecordKind;
using ganglion::edge::recordKindName;
using ganglion::edge::SeriesTable;

namespace {

const bool kTrace = std::getenv("GANGLION_FUZZ_TRACE") != nullptr;

constexpr size_t kMaxRecords = 4;
constexpr size_t kMaxAttrs = 6;
constexpr size_t kMaxSeries = 3;  // a small table, so interning also refuses (kNoSeries)

// The config's field table: built once, read-only afterwards (as at config load).
struct Fields {
  FieldNames names;
  FieldId number[6];
  FieldId detector, reason, attrs;

  Fields() {
    static constexpr std::string_view kNumbers[] = {"rms", "mean", "score", "count", "min", "max"};
    for (size_t i = 0; i < 6; ++i) number[i] = names.intern(kNumbers[i], FieldNames::Type::kNumber);
    detector = names.intern("detector", FieldNames::Type::kText);
    reason = names.intern("reason", FieldNames::Type::kText);
    attrs = names.intern("attrs", FieldNames::Type::kText);
  }
};

const Fields& fields() {
  static const Fields f;
  return f;
}

// Reads the record bytes; past the end, zeros.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  uint8_t byte() { return at_ < data_.size() ? static_cast<uint8_t>(data_[at_++]) : 0; }
  std::string_view bytes(size_t n) {
    n = std::min(n, data_.size() - at_);
    const std::string_view s = data_.substr(at_, n);
    at_ += n;
    return s;
  }
  uint64_t u64() {
    uint64_t v = 0;
    const std::string_view s = bytes(sizeof v);
    std::memcpy(&v, s.data(), s.size());
    return v;
  }

 private:
  std::string_view data_;
  size_t at_ = 0;
};

double pickNumber(Reader& r) {
  static constexpr double kInf = std::numeric_limits<double>::infinity();
  static constexpr double kNumbers[] = {0,
                                        -0.0,
                                        1,
                                        -1,
                                        0.5,
                                        5,
                                        6,
                                        7.5,
                                        42,
                                        -3,
                                        100,
                                        1000,
                                        -1000,
                                        1e308,
                                        -1e308,
                                        std::numeric_limits<double>::max(),
                                        std::numeric_limits<double>::lowest(),
                                        std::numeric_limits<double>::min(),
                                        std::numeric_limits<double>::denorm_min(),
                                        kInf,
                                        -kInf,
                                        std::numeric_limits<double>::quiet_NaN(),
                                        9007199254740993.0,
                                        1e-300};
  const uint8_t b = r.byte();
  if (b < 0xF0) return kNumbers[b % std::size(kNumbers)];
  const uint64_t bits = r.u64();  // any pattern: NaN payloads, subnormals
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

int64_t pickTs(Reader& r) {
  static constexpr int64_t kTimes[] = {0,
                                       1,
                                       -1,
                                       1700000000000,
                                       std::numeric_limits<int64_t>::max(),
                                       std::numeric_limits<int64_t>::min(),
                                       (int64_t{1} << 53) + 1};
  const uint8_t b = r.byte();
  if (b < 0xF0) return kTimes[b % std::size(kTimes)];
  return static_cast<int64_t>(r.u64());
}

template <size_t N>
std::string_view pickText(Reader& r, const std::string_view (&pool)[N]) {
  const uint8_t b = r.byte();
  if (b < 0xC0) return pool[b % N];
  return r.bytes(b & 0x3F);  // raw bytes, NULs and all
}

constexpr std::string_view kDevices[] = {"pump-1", "pump-2", "PUMP-1", "Pump-2", "fan-7", "", "a\tb", "vib"};
constexpr std::string_view kMetrics[] = {"temp", "vibration", "rms", "pressure", ""};
constexpr std::string_view kSources[] = {"modbus", "mqtt", "opcua", ""};
constexpr std::string_view kDetectors[] = {"vib", "zscore", "threshold", "", "VIB"};
constexpr std::string_view kReasons[] = {"spike", "drift", "stuck", "", "it's \"quoted\"\n"};
constexpr std::string_view kAttrKeys[] = {"site", "line", "zone", "x", "", "a.b", "site2", "and"};
constexpr std::string_view kAttrValues[] = {"plant-a", "12.5", "-3",     "nan", "inf", "1e999",  "0x10",
                                            " 1",      "",     "1e-400", "-0",  "7",   "Plant-A"};

std::string withoutNul(std::string_view s) {
  std::string out(s);
  std::erase(out, '\0');
  return out;
}

// What findAttr should give for an entry written with appendAttr.
expr::Value expectedAttr(std::string_view value, bool is_number) {
  if (!is_number) return expr::Value::string(value);
  double d = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, d);
  return ec == std::errc() && ptr == end && std::isfinite(d) ? expr::Value::num(d) : expr::Value::null();
}

bool within(std::string_view s, const char* begin, size_t size) {
  const auto b = reinterpret_cast<uintptr_t>(begin);
  const auto p = reinterpret_cast<uintptr_t>(s.data());
  return p >= b && p - b <= size && s.size() <= size - (p - b);
}

// ---------------------------------------------------------------------------------------
// findAttr on raw bytes
// ---------------------------------------------------------------------------------------

void checkRawAttr(std::string_view attrs, std::string_view key) {
  const expr::Value v = expr::findAttr(attrs, key);
  switch (v.type) {
    case expr::Type::kNull:
      return;
    case expr::Type::kNumber:
      CHECK(std::isfinite(v.number));
      return;
    case expr::Type::kString: {
      const std::string_view s = v.view();
      CHECK(within(s, attrs.data(), attrs.size()));
      const size_t off = static_cast<size_t>(s.data() - attrs.data());
      CHECK(off >= 2 + key.size());
      CHECK(attrs[off - 2] == '\0');
      CHECK(attrs[off - 1] != 'n');
      CHECK(off + s.size() < attrs.size() && attrs[off + s.size()] == '\0');
      CHECK(s.find('\0') == std::string_view::npos);
      const size_t key_at = off - 2 - key.size();
      CHECK(attrs.substr(key_at, key.size()) == key);
      CHECK(key_at == 0 || attrs[key_at - 1] == '\0');
      return;
    }
    default:
      CHECK(false && "findAttr gave a boolean or kAny");
  }
}

void fuzzRawAttrs(std::string_view rest) {
  Reader r(rest);
  const std::string_view key = r.bytes(r.byte() % 24);
  const std::string_view attrs = rest.substr(std::min(rest.size(), size_t{1} + key.size()));
  checkRawAttr(attrs, key);
  checkRawAttr(rest, key);
  for (std::string_view k : kAttrKeys) checkRawAttr(attrs, k);
  // The pieces between NULs as keys, so keys that are there get found.
  size_t at = 0;
  for (int i = 0; i < 12 && at <= attrs.size(); ++i) {
    const size_t end = std::min(attrs.find('\0', at), attrs.size());
    checkRawAttr(attrs, attrs.substr(at, end - at));
    at = end + 1;
  }
}

// ---------------------------------------------------------------------------------------
// appendAttr / findAttr round trip
// ---------------------------------------------------------------------------------------

struct AttrEntry {
  std::string key, value;
  bool is_number;
};

std::vector<AttrEntry> pickAttrs(Reader& r) {
  std::vector<AttrEntry> entries;
  const size_t n = r.byte() % (kMaxAttrs + 1);
  for (size_t i = 0; i < n; ++i) {
    AttrEntry e;
    e.key = withoutNul(pickText(r, kAttrKeys));
    e.value = withoutNul(pickText(r, kAttrValues));
    e.is_number = r.byte() & 1;
    entries.push_back(std::move(e));
  }
  return entries;
}

std::string buildAttrs(const std::vector<AttrEntry>& entries) {
  std::string out;
  for (const AttrEntry& e : entries) expr::appendAttr(out, e.key, e.value, e.is_number);
  return out;
}

void checkAttrLookup(std::string_view attrs, const std::vector<AttrEntry>& entries, std::string_view key) {
  const AttrEntry* first = nullptr;
  for (const AttrEntry& e : entries) {
    if (e.key == key) {
      first = &e;
      break;
    }
  }
  const expr::Value got = expr::findAttr(attrs, key);
  if (!first) {
    CHECK(got.type == expr::Type::kNull);
    return;
  }
  const expr::Value want = expectedAttr(first->value, first->is_number);
  CHECK(got.type == want.type);
  if (want.type == expr::Type::kNumber) CHECK(got.number == want.number);
  if (want.type == expr::Type::kString) {
    CHECK(got.view() == want.view());
    CHECK(within(got.view(), attrs.data(), attrs.size()));
  }
}

void fuzzAttrRoundTrip(Reader& r) {
  const std::vector<AttrEntry> entries = pickAttrs(r);
  const std::string attrs = buildAttrs(entries);
  for (const AttrEntry& e : entries) checkAttrLookup(attrs, entries, e.key);
  for (std::string_view k : kAttrKeys) checkAttrLookup(attrs, entries, k);
}

// ---------------------------------------------------------------------------------------
// records
// ---------------------------------------------------------------------------------------

void addRecord(Reader& r, Batch& batch, SeriesTable& series) {
  const Fields& f = fields();
  Record rec;
  rec.ts = pickTs(r);
  const uint8_t flags = r.byte();
  if (flags & 0x01) rec.value = pickNumber(r);  // else NaN: no value
  if (flags & 0x02) {
    const std::string_view source = pickText(r, kSources);
    const std::string_view device = pickText(r, kDevices);
    const std::string_view metric = pickText(r, kMetrics);
    rec.series = series.intern(source, device, metric);  // kNoSeries once the table is full
  }
  rec.kind = static_cast<RecordKind>(r.byte() % 4);
  rec.quality = static_cast<Quality>(r.byte() % 3);
  rec.seq = r.byte();
  batch.push(rec);
  const uint8_t present = r.byte();
  for (size_t i = 0; i < 6; ++i)
    if (present & (1u << i)) batch.addNumber(f.number[i], pickNumber(r));
  if (flags & 0x04) batch.addText(f.detector, pickText(r, kDetectors));
  if (flags & 0x08) batch.addText(f.reason, pickText(r, kReasons));
  if (flags & 0x10) {
    batch.addText(f.attrs, buildAttrs(pickAttrs(r)));
  } else if (flags & 0x20) {
    batch.addText(f.attrs, r.bytes(r.byte() % 64));  // malformed attributes, as findAttr may meet them
  }
  if (flags & 0x40) batch.addNumber(f.number[2], pickNumber(r));     // a second score: the first one counts
  if (present & 0x80) batch.addNumber(FieldId{200}, pickNumber(r));  // an id no name has
}

struct World {
  SeriesTable series{kMaxSeries};
  Batch batch;
  Batch copy;  // the same records copied (copyFrom) in reverse order, after a filler record
};

void buildWorld(std::string_view rest, World& w) {
  Reader r(rest);
  const size_t n = 1 + r.byte() % kMaxRecords;
  for (size_t i = 0; i < n; ++i) addRecord(r, w.batch, w.series);
  // And a bare record: no value, no series, no fields.
  w.batch.push(Record{});
  w.copy.push(Record{});
  w.copy.addText(fields().reason, "filler");
  for (size_t i = w.batch.size(); i-- > 0;) w.copy.copyFrom(w.batch, w.batch.records[i]);
  fuzzAttrRoundTrip(r);
}

// ---------------------------------------------------------------------------------------
// compile errors
// ---------------------------------------------------------------------------------------

// "LINE:COLUMN: message", 1-based, the position inside the text (or just past it).
void checkError(std::string_view text, std::string_view message) {
  size_t numbers[2] = {0, 0};
  std::string_view rest = message;
  for (size_t& n : numbers) {
    const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
    CHECK(ec == std::errc() && ptr != rest.data());
    CHECK(rest.front() >= '1' && rest.front() <= '9');
    rest.remove_prefix(static_cast<size_t>(ptr - rest.data()));
    CHECK(!rest.empty() && rest.front() == ':');
    rest.remove_prefix(1);
  }
  CHECK(rest.size() > 1 && rest.front() == ' ' && rest[1] != ' ');
  const std::string_view seen = text.substr(0, expr::kMaxTextBytes);
  const size_t lines = 1 + static_cast<size_t>(std::count(seen.begin(), seen.end(), '\n'));
  CHECK(numbers[0] >= 1 && numbers[0] <= lines);
  CHECK(numbers[1] >= 1 && numbers[1] <= seen.size() + 1);
}

// ---------------------------------------------------------------------------------------
// running programs
// ---------------------------------------------------------------------------------------

bool validType(expr::Type t) {
  return t == expr::Type::kAny || t == expr::Type::kNull || t == expr::Type::kBool ||
         t == expr::Type::kNumber || t == expr::Type::kString;
}

// A run's result, copied out (a string result is valid only until the next run).
struct Outcome {
  expr::Type type;
  uint64_t number_bits;
  std::string str;
  bool operator==(const Outcome&) const = default;
};

bool knownString(std::string_view s, const expr::Program& p, const World& w, const expr::Evaluator& ev) {
  if (s.empty()) return true;
  if (within(s, w.batch.text.data(), w.batch.text.size())) return true;
  if (within(s, w.copy.text.data(), w.copy.text.size())) return true;
  const auto& strings = w.series.strings();
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string_view v = strings.view(static_cast<ganglion::edge::StringId>(i));
    if (within(s, v.data(), v.size())) return true;
  }
  if (within(s, reinterpret_cast<const char*>(&ev), sizeof ev)) return true;  // lower/upper scratch
  for (Quality q : {Quality::kGood, Quality::kUncertain, Quality::kBad})
    if (within(s, qualityName(q).data(), qualityName(q).size())) return true;
  for (RecordKind k : {RecordKind::kReading, RecordKind::kWindow, RecordKind::kEvent, RecordKind::kSummary})
    if (within(s, recordKindName(k).data(), recordKindName(k).size())) return true;
  // Otherwise a string constant of the program (in its private pool): unescaped, so no longer
  // than the text it was written in.
  return s.size() <= p.text().size();
}

Outcome runOnce(expr::Evaluator& ev, const expr::Program& p, const expr::Input& in, const World& w) {
  const expr::Value v = ev.run(p, in);
  CHECK(v.type == expr::Type::kNull || v.type == expr::Type::kBool || v.type == expr::Type::kNumber ||
        v.type == expr::Type::kString);
  const expr::Type want = p.resultType();
  if (want != expr::Type::kAny) CHECK(v.type == want || v.type == expr::Type::kNull);
  Outcome out{v.type, 0, {}};
  switch (v.type) {
    case expr::Type::kBool:
      CHECK(v.number == 0 || v.number == 1);
      break;
    case expr::Type::kNumber:
      CHECK(!std::isnan(v.number));
      break;
    case expr::Type::kString:
      CHECK(v.str != nullptr || v.len == 0);
      CHECK(knownString(v.view(), p, w, ev));
      out.str.assign(v.view());  // reads every byte: ASan sees a dangling or short view
      break;
    default:
      break;
  }
  if (v.type == expr::Type::kBool || v.type == expr::Type::kNumber)
    std::memcpy(&out.number_bits, &v.number, 8);
  CHECK(ev.test(p, in) == v.isTrue());
  return out;
}

void runProgram(const expr::Program& p, const World& w, expr::Evaluator& ev, expr::Evaluator& other) {
  const size_t n = w.batch.size();
  for (size_t i = 0; i < n; ++i) {
    const expr::Input in{&w.batch.records[i], &w.batch, &w.series};
    const Outcome first = runOnce(ev, p, in, w);
    if (kTrace) {
      double d;
      std::memcpy(&d, &first.number_bits, sizeof d);
      std::fprintf(stderr, "  run: %s %g '%s'\n", std::string(expr::typeName(first.type)).c_str(), d,
                   first.str.c_str());
    }
    CHECK(runOnce(ev, p, in, w) == first);
    CHECK(runOnce(other, p, in, w) == first);
    // A record copied into another batch reads the same.
    const expr::Input copied{&w.copy.records[n - i], &w.copy, &w.series};
    CHECK(runOnce(ev, p, copied, w) == first);
  }
}

void checkProgram(const expr::Program& p, std::string_view text) {
  CHECK(p.size() >= 1);
  CHECK(p.size() <= 4 * expr::kMaxNodes + 8);
  CHECK(validType(p.resultType()));
  CHECK(p.text() == text);
}

void fuzzExpression(std::string_view text, const World& w) {
  const Fields& f = fields();
  expr::Scope scope;
  scope.names = &f.names;
  scope.all_fields = true;
  scope.attrs_field = f.attrs;

  auto any = expr::compile(text, scope, false);
  auto cond = expr::compile(text, scope, true);
  if (kTrace) {
    if (any.ok())
      std::fprintf(stderr, "compile: ok, %zu instructions, %s\n", any->size(),
                   std::string(expr::typeName(any->resultType())).c_str());
    else
      std::fprintf(stderr, "compile: %s\n", any.error().message.c_str());
  }
  if (!any.ok()) {
    checkError(text, any.error().message);
    CHECK(!cond.ok());
    // The same error, unless the condition check (before code generation) came first.
    CHECK(cond.error().message == any.error().message ||
          cond.error().message.starts_with("1:1: the expression must be a condition"));
  } else {
    checkProgram(*any, text);
    const expr::Type t = any->resultType();
    const bool condition = t == expr::Type::kBool || t == expr::Type::kAny;
    CHECK(cond.ok() == condition);
    if (!cond.ok()) checkError(text, cond.error().message);
  }
  if (cond.ok()) {
    checkProgram(*cond, text);
    CHECK(cond->size() == any->size());
    CHECK(cond->resultType() == any->resultType());
  }

  // A narrower scope never accepts what the full one refuses, and compiles the same program.
  expr::Scope narrow;
  narrow.names = &f.names;
  narrow.fields = {f.number[0], f.number[4], f.detector};
  auto narrowed = expr::compile(text, narrow, false);
  if (narrowed.ok()) {
    CHECK(any.ok());
    CHECK(narrowed->size() == any->size());
    CHECK(narrowed->resultType() == any->resultType());
  } else {
    checkError(text, narrowed.error().message);
  }
  auto bare = expr::compile(text, expr::Scope{}, false);
  if (bare.ok())
    CHECK(any.ok() && bare->size() == any->size());
  else
    checkError(text, bare.error().message);

  if (!any.ok()) return;
  // Programs move (a filter stage takes its condition by value): run the moved-to copies, the
  // results they came in gone.
  std::vector<expr::Program> programs;
  programs.push_back(std::move(*any));
  if (cond.ok()) programs.push_back(std::move(*cond));
  if (narrowed.ok()) programs.push_back(std::move(*narrowed));
  any = ganglion::Error("moved");
  cond = ganglion::Error("moved");
  narrowed = ganglion::Error("moved");

  auto ev = std::make_unique<expr::Evaluator>();
  auto other = std::make_unique<expr::Evaluator>();
  for (const expr::Program& p : programs) runProgram(p, w, *ev, *other);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  const std::string_view rest = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);

  World w;
  buildWorld(rest, w);
  fuzzExpression(text, w);
  fuzzRawAttrs(rest);
  // The record bytes as an expression too: odd bytes, NULs, text past kMaxTextBytes.
  if (!rest.empty()) fuzzExpression(rest, w);
  return 0;
}
