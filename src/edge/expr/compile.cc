// Expression text → program: a lexer, a recursive-descent parser into a small node arena
// (bounded in nodes and depth, so hostile text cannot exhaust the stack), a type check where
// types are known, and code generation with forward jumps only.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>

#include "edge/expr/expr.h"
#include "edge/expr/ops.h"

namespace ganglion::edge::expr {

std::string_view typeName(Type t) {
  switch (t) {
    case Type::kAny:
      return "any value";
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "a boolean";
    case Type::kNumber:
      return "a number";
    case Type::kString:
      return "a string";
  }
  return "any value";
}

namespace {

/// The names an expression reads from the record itself, before any field.
constexpr std::pair<std::string_view, Op> kBuiltins[] = {
    {"value", Op::kValue},   {"ts", Op::kTs},           {"device", Op::kDevice}, {"metric", Op::kMetric},
    {"source", Op::kSource}, {"quality", Op::kQuality}, {"kind", Op::kKind},
};
/// Words the grammar takes for itself.
constexpr std::string_view kKeywords[] = {"and", "or", "not", "in", "true", "false", "null"};
/// `event.score`, `record.value`: a rule's names of the record it matches; `attrs.site`: an
/// attribute.
constexpr std::string_view kScopePrefixes[] = {"event.", "record."};

enum class Tok : uint8_t {
  kEnd,
  kNumber,
  kString,
  kName,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kDot,
  kQuestion,
  kColon,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
  kNot,
};

struct Token {
  Tok kind = Tok::kEnd;
  size_t pos = 0;
  std::string_view text;  ///< names: the name
  double number = 0;
  std::string string;  ///< string literals: the unescaped value
};

struct CompileError {
  size_t pos;
  std::string message;
};

enum class NodeKind : uint8_t { kConst, kName, kUnary, kBinary, kAnd, kOr, kNot, kTernary, kIn, kCall };

struct Node {
  NodeKind kind;
  size_t pos = 0;
  Type type = Type::kAny;
  Op op = Op::kConst;          // kName: the load; kUnary/kBinary: the operation
  uint16_t field = 0;          // kName kField
  uint32_t constant = 0;       // kConst: index into the constants list; kName kAttr: name index
  Fn fn = Fn::kAbs;            // kCall
  bool negated = false;        // kIn
  std::vector<uint32_t> kids;  // operands; kIn: [x, constants...]
};

struct PendingConstant {
  Type type;
  double number = 0;
  size_t offset = 0;  // strings: into the pool text
  size_t len = 0;
};

class Parser {
 public:
  Parser(std::string_view text, const Scope& scope) : text_(text), scope_(scope) {}

  std::vector<Node> nodes;
  std::vector<PendingConstant> constants;
  std::string pool;
  std::vector<std::pair<size_t, size_t>> attr_names;  // offset, length in pool

  uint32_t parseAll() {
    advance();
    const uint32_t root = parseTernary();
    if (tok_.kind != Tok::kEnd)
      fail(tok_.pos, fmt::format("unexpected {} after the expression", describe(tok_)));
    return root;
  }

  [[noreturn]] void fail(size_t pos, std::string message) { throw CompileError{pos, std::move(message)}; }

 private:
  // ---- lexer
  static bool isNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
  static bool isNameChar(char c) { return isNameStart(c) || (c >= '0' && c <= '9'); }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEnd:
        return "end of expression";
      case Tok::kNumber:
        return "a number";
      case Tok::kString:
        return "a string";
      case Tok::kName:
        return fmt::format("'{}'", t.text);
      default:
        return fmt::format("'{}'", t.text);
    }
  }

  void advance() {
    tok_ = Token{};
    while (at_ < text_.size() &&
           (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r'))
      ++at_;
    tok_.pos = at_;
    if (at_ >= text_.size()) return;
    const char c = text_[at_];
    auto one = [&](Tok k, size_t n = 1) {
      tok_.kind = k;
      tok_.text = text_.substr(at_, n);
      at_ += n;
    };
    const char next = at_ + 1 < text_.size() ? text_[at_ + 1] : '\0';
    if ((c >= '0' && c <= '9') || (c == '.' && next >= '0' && next <= '9')) return lexNumber();
    if (c == '\'' || c == '"') return lexString(c);
    if (isNameStart(c)) {
      size_t end = at_;
      while (end < text_.size() && isNameChar(text_[end])) ++end;
      tok_.text = text_.substr(at_, end - at_);
      at_ = end;
      if (tok_.text == "and")
        tok_.kind = Tok::kAnd;
      else if (tok_.text == "or")
        tok_.kind = Tok::kOr;
      else if (tok_.text == "not")
        tok_.kind = Tok::kNot;
      else
        tok_.kind = Tok::kName;
      return;
    }
    switch (c) {
      case '(':
        return one(Tok::kLParen);
      case ')':
        return one(Tok::kRParen);
      case '[':
        return one(Tok::kLBracket);
      case ']':
        return one(Tok::kRBracket);
      case ',':
        return one(Tok::kComma);
      case '.':
        return one(Tok::kDot);
      case '?':
        return one(Tok::kQuestion);
      case ':':
        return one(Tok::kColon);
      case '+':
        return one(Tok::kPlus);
      case '-':
        return one(Tok::kMinus);
      case '*':
        return one(Tok::kStar);
      case '/':
        return one(Tok::kSlash);
      case '%':
        return one(Tok::kPercent);
      case '=':
        if (next == '=') return one(Tok::kEq, 2);
        fail(at_, "'=' is not an operator: compare with '=='");
      case '!':
        if (next == '=') return one(Tok::kNe, 2);
        return one(Tok::kNot);
      case '<':
        if (next == '=') return one(Tok::kLe, 2);
        if (next == '>') return one(Tok::kNe, 2);
        return one(Tok::kLt);
      case '>':
        if (next == '=') return one(Tok::kGe, 2);
        return one(Tok::kGt);
      case '&':
        if (next == '&') return one(Tok::kAnd, 2);
        fail(at_, "'&' is not an operator: use 'and'");
      case '|':
        if (next == '|') return one(Tok::kOr, 2);
        fail(at_, "'|' is not an operator: use 'or'");
      default:
        break;
    }
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      fail(at_, fmt::format("unexpected byte 0x{:02x}", static_cast<unsigned char>(c)));
    fail(at_, fmt::format("unexpected '{}'", c));
  }

  void lexNumber() {
    size_t end = at_;
    auto digits = [&] {
      while (end < text_.size() && text_[end] >= '0' && text_[end] <= '9') ++end;
    };
    digits();
    if (end < text_.size() && text_[end] == '.') {
      ++end;
      digits();
    }
    if (end < text_.size() && (text_[end] == 'e' || text_[end] == 'E')) {
      size_t e = end + 1;
      if (e < text_.size() && (text_[e] == '+' || text_[e] == '-')) ++e;
      if (e < text_.size() && text_[e] >= '0' && text_[e] <= '9') {
        end = e;
        digits();
      }
    }
    if (end < text_.size() && (isNameChar(text_[end]) || text_[end] == '.'))
      fail(end, fmt::format("unexpected '{}' after a number", text_[end]));
    const char* first = text_.data() + at_;
    const char* last = text_.data() + end;
    double v = 0;
    // from_chars wants no leading '.', which a number may have here (".5").
    char buf[130];
    if (*first == '.') {
      const size_t len = static_cast<size_t>(last - first);
      if (len > 128) fail(at_, "number too long");
      buf[0] = '0';
      std::memcpy(buf + 1, first, len);
      first = buf;
      last = buf + len + 1;
    }
    auto [ptr, ec] = std::from_chars(first, last, v);
    if (ec != std::errc() || ptr != last || !std::isfinite(v)) fail(at_, "number out of range");
    tok_.kind = Tok::kNumber;
    tok_.number = v;
    tok_.text = text_.substr(at_, end - at_);
    at_ = end;
  }

  void lexString(char quote) {
    const size_t start = at_;
    size_t i = at_ + 1;
    std::string out;
    while (true) {
      if (i >= text_.size()) fail(start, "string not closed");
      const char c = text_[i];
      if (c == quote) break;
      if (c == '\\') {
        if (i + 1 >= text_.size()) fail(start, "string not closed");
        const char e = text_[i + 1];
        switch (e) {
          case '\\':
          case '\'':
          case '"':
            out.push_back(e);
            break;
          case 'n':
            out.push_back('\n');
            break;
          case 't':
            out.push_back('\t');
            break;
          default:
            fail(i, fmt::format("unknown escape '\\{}' (known: \\\\ \\' \\\" \\n \\t)", e));
        }
        i += 2;
        continue;
      }
      out.push_back(c);
      ++i;
    }
    tok_.kind = Tok::kString;
    tok_.text = text_.substr(start, i + 1 - start);
    tok_.string = std::move(out);
    at_ = i + 1;
  }

  // ---- parser
  struct DepthGuard {
    Parser& p;
    DepthGuard(Parser& parser, size_t pos) : p(parser) {
      if (++p.depth_ > kMaxDepth)
        p.fail(pos, fmt::format("the expression nests deeper than {} levels", kMaxDepth));
    }
    ~DepthGuard() { --p.depth_; }
  };

  uint32_t add(Node n) {
    if (nodes.size() >= kMaxNodes)
      fail(n.pos, fmt::format("the expression has more than {} terms", kMaxNodes));
    nodes.push_back(std::move(n));
    return static_cast<uint32_t>(nodes.size() - 1);
  }

  void expect(Tok kind, std::string_view what) {
    if (tok_.kind != kind) fail(tok_.pos, fmt::format("expected {}, found {}", what, describe(tok_)));
    advance();
  }

  uint32_t parseTernary() {
    DepthGuard guard(*this, tok_.pos);
    const uint32_t cond = parseOr();
    if (tok_.kind != Tok::kQuestion) return cond;
    const size_t pos = tok_.pos;
    advance();
    const uint32_t yes = parseTernary();
    expect(Tok::kColon, "':' of '? :'");
    const uint32_t no = parseTernary();
    return add(Node{.kind = NodeKind::kTernary, .pos = pos, .kids = {cond, yes, no}});
  }

  uint32_t parseOr() {
    uint32_t left = parseAnd();
    while (tok_.kind == Tok::kOr) {
      const size_t pos = tok_.pos;
      advance();
      const uint32_t right = parseAnd();
      left = add(Node{.kind = NodeKind::kOr, .pos = pos, .kids = {left, right}});
    }
    return left;
  }

  uint32_t parseAnd() {
    uint32_t left = parseNot();
    while (tok_.kind == Tok::kAnd) {
      const size_t pos = tok_.pos;
      advance();
      const uint32_t right = parseNot();
      left = add(Node{.kind = NodeKind::kAnd, .pos = pos, .kids = {left, right}});
    }
    return left;
  }

  uint32_t parseNot() {
    if (tok_.kind != Tok::kNot) return parseComparison();
    DepthGuard guard(*this, tok_.pos);
    const size_t pos = tok_.pos;
    advance();
    const uint32_t operand = parseNot();
    return add(Node{.kind = NodeKind::kNot, .pos = pos, .kids = {operand}});
  }

  static std::optional<Op> comparisonOp(Tok t) {
    switch (t) {
      case Tok::kEq:
        return Op::kEq;
      case Tok::kNe:
        return Op::kNe;
      case Tok::kLt:
        return Op::kLt;
      case Tok::kLe:
        return Op::kLe;
      case Tok::kGt:
        return Op::kGt;
      case Tok::kGe:
        return Op::kGe;
      default:
        return std::nullopt;
    }
  }

  uint32_t parseComparison() {
    const uint32_t left = parseSum();
    if (auto op = comparisonOp(tok_.kind)) {
      const size_t pos = tok_.pos;
      advance();
      const uint32_t right = parseSum();
      if (comparisonOp(tok_.kind)) fail(tok_.pos, "comparisons do not chain: write 'a < b and b < c'");
      return add(Node{.kind = NodeKind::kBinary, .pos = pos, .op = *op, .kids = {left, right}});
    }
    bool negated = false;
    size_t pos = tok_.pos;
    if (tok_.kind == Tok::kNot) {
      // `x not in [...]`
      advance();
      if (!(tok_.kind == Tok::kName && tok_.text == "in")) fail(tok_.pos, "expected 'in' after 'not'");
      negated = true;
    }
    if (tok_.kind == Tok::kName && tok_.text == "in") {
      advance();
      return parseInList(left, pos, negated);
    }
    return left;
  }

  uint32_t parseInList(uint32_t left, size_t pos, bool negated) {
    expect(Tok::kLBracket, "'[' after 'in'");
    Node n{.kind = NodeKind::kIn, .pos = pos, .negated = negated, .kids = {left}};
    while (true) {
      if (n.kids.size() > 64) fail(tok_.pos, "an 'in' list holds at most 64 values");
      const size_t item_pos = tok_.pos;
      bool minus = false;
      if (tok_.kind == Tok::kMinus) {
        minus = true;
        advance();
      }
      if (tok_.kind == Tok::kNumber) {
        n.kids.push_back(constantNode(Type::kNumber, minus ? -tok_.number : tok_.number, {}, item_pos));
      } else if (tok_.kind == Tok::kString && !minus) {
        n.kids.push_back(constantNode(Type::kString, 0, tok_.string, item_pos));
      } else if (tok_.kind == Tok::kName && !minus && (tok_.text == "true" || tok_.text == "false")) {
        n.kids.push_back(constantNode(Type::kBool, tok_.text == "true" ? 1 : 0, {}, item_pos));
      } else {
        fail(item_pos, "an 'in' list holds numbers, strings or booleans written out");
      }
      advance();
      if (tok_.kind == Tok::kComma) {
        advance();
        continue;
      }
      expect(Tok::kRBracket, "',' or ']' in the 'in' list");
      break;
    }
    return add(std::move(n));
  }

  uint32_t parseSum() {
    uint32_t left = parseProduct();
    while (tok_.kind == Tok::kPlus || tok_.kind == Tok::kMinus) {
      const Op op = tok_.kind == Tok::kPlus ? Op::kAdd : Op::kSub;
      const size_t pos = tok_.pos;
      advance();
      const uint32_t right = parseProduct();
      left = add(Node{.kind = NodeKind::kBinary, .pos = pos, .op = op, .kids = {left, right}});
    }
    return left;
  }

  uint32_t parseProduct() {
    uint32_t left = parseUnary();
    while (tok_.kind == Tok::kStar || tok_.kind == Tok::kSlash || tok_.kind == Tok::kPercent) {
      const Op op = tok_.kind == Tok::kStar ? Op::kMul : tok_.kind == Tok::kSlash ? Op::kDiv : Op::kMod;
      const size_t pos = tok_.pos;
      advance();
      const uint32_t right = parseUnary();
      left = add(Node{.kind = NodeKind::kBinary, .pos = pos, .op = op, .kids = {left, right}});
    }
    return left;
  }

  uint32_t parseUnary() {
    if (tok_.kind != Tok::kMinus) return parsePrimary();
    DepthGuard guard(*this, tok_.pos);
    const size_t pos = tok_.pos;
    advance();
    if (tok_.kind == Tok::kNumber) {  // a negative literal is a constant
      const uint32_t c = constantNode(Type::kNumber, -tok_.number, {}, pos);
      advance();
      return c;
    }
    const uint32_t operand = parseUnary();
    return add(Node{.kind = NodeKind::kUnary, .pos = pos, .op = Op::kNeg, .kids = {operand}});
  }

  uint32_t constantNode(Type type, double number, std::string_view s, size_t pos) {
    PendingConstant c{.type = type, .number = number};
    if (type == Type::kString) {
      c.offset = pool.size();
      c.len = s.size();
      pool.append(s);
    }
    constants.push_back(c);
    return add(Node{.kind = NodeKind::kConst,
                    .pos = pos,
                    .type = type,
                    .constant = static_cast<uint32_t>(constants.size() - 1),
                    .kids = {}});
  }

  uint32_t parsePrimary() {
    const size_t pos = tok_.pos;
    switch (tok_.kind) {
      case Tok::kNumber: {
        const uint32_t c = constantNode(Type::kNumber, tok_.number, {}, pos);
        advance();
        return c;
      }
      case Tok::kString: {
        const uint32_t c = constantNode(Type::kString, 0, tok_.string, pos);
        advance();
        return c;
      }
      case Tok::kLParen: {
        advance();
        const uint32_t inner = parseTernary();
        expect(Tok::kRParen, "')'");
        return inner;
      }
      case Tok::kName:
        return parseName();
      default:
        fail(pos, fmt::format("expected a value, found {}", describe(tok_)));
    }
  }

  uint32_t parseName() {
    const size_t pos = tok_.pos;
    std::string_view first = tok_.text;
    advance();
    if (first == "true" || first == "false")
      return constantNode(Type::kBool, first == "true" ? 1 : 0, {}, pos);
    if (first == "null") return constantNode(Type::kNull, 0, {}, pos);
    if (first == "in") fail(pos, "'in' needs a value on its left");
    if (tok_.kind == Tok::kLParen) return parseCall(first, pos);
    std::string path(first);
    while (tok_.kind == Tok::kDot) {
      advance();
      if (tok_.kind != Tok::kName && tok_.kind != Tok::kAnd && tok_.kind != Tok::kOr &&
          tok_.kind != Tok::kNot)
        fail(tok_.pos, fmt::format("expected a name after '.', found {}", describe(tok_)));
      path += '.';
      path += tok_.text;
      advance();
    }
    return resolveName(path, pos);
  }

  uint32_t parseCall(std::string_view name, size_t pos) {
    const FunctionInfo* info = nullptr;
    for (const auto& f : kFunctions)
      if (f.name == name) info = &f;
    if (!info) fail(pos, fmt::format("unknown function '{}'{}", name, suggestion(name, true)));
    DepthGuard guard(*this, pos);
    advance();  // '('
    Node n{.kind = NodeKind::kCall, .pos = pos, .fn = info->fn, .kids = {}};
    if (tok_.kind != Tok::kRParen) {
      while (true) {
        n.kids.push_back(parseTernary());
        if (n.kids.size() > info->max_args) break;
        if (tok_.kind != Tok::kComma) break;
        advance();
      }
    }
    if (n.kids.size() < info->min_args || n.kids.size() > info->max_args) {
      const std::string want = info->min_args == info->max_args
                                   ? fmt::format("{}", info->min_args)
                                   : fmt::format("{} to {}", info->min_args, info->max_args);
      fail(pos, fmt::format("{}() takes {} argument{}", name, want, info->max_args == 1 ? "" : "s"));
    }
    expect(Tok::kRParen, "',' or ')' after an argument");
    return add(std::move(n));
  }

  static size_t editDistance(std::string_view a, std::string_view b) {
    if (a.size() > 32 || b.size() > 32) return 99;
    size_t d[33][33];
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
      for (size_t j = 1; j <= b.size(); ++j)
        d[i][j] =
            std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    return d[a.size()][b.size()];
  }

  std::string suggestion(std::string_view name, bool functions) const {
    std::string_view best;
    // Close enough to be a typo: one edit per three letters.
    size_t best_d = std::max<size_t>(1, name.size() / 3) + 1;
    auto consider = [&](std::string_view candidate) {
      const size_t d = editDistance(name, candidate);
      if (d < best_d) {
        best_d = d;
        best = candidate;
      }
    };
    if (functions) {
      for (const auto& f : kFunctions) consider(f.name);
    } else {
      for (std::string_view b : {"value", "ts", "device", "metric", "source", "quality", "kind"}) consider(b);
      if (scope_.names) {
        if (scope_.all_fields) {
          for (size_t i = 0; i < scope_.names->size(); ++i)
            consider(scope_.names->name(static_cast<FieldId>(i)));
        } else {
          for (FieldId f : scope_.fields) consider(scope_.names->name(f));
        }
      }
    }
    return best.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", best);
  }

  uint32_t resolveName(std::string_view path, size_t pos) {
    std::string_view name = path;
    for (std::string_view prefix : kScopePrefixes) {
      if (name.starts_with(prefix)) {
        name.remove_prefix(prefix.size());
        break;
      }
    }
    Node n{.kind = NodeKind::kName, .pos = pos, .kids = {}};
    if (name.starts_with("attrs.")) {
      const std::string_view key = name.substr(6);
      n.op = Op::kAttr;
      n.type = Type::kAny;
      attr_names.emplace_back(pool.size(), key.size());
      pool.append(key);
      n.constant = static_cast<uint32_t>(attr_names.size() - 1);
      return add(std::move(n));
    }
    for (const auto& [builtin, op] : kBuiltins) {
      if (name == builtin) {
        n.op = op;
        n.type = (op == Op::kValue || op == Op::kTs) ? Type::kNumber : Type::kString;
        return add(std::move(n));
      }
    }
    if (scope_.names) {
      const FieldId id = scope_.names->find(name);
      const bool visible = id != FieldNames::kNoField &&
                           (scope_.all_fields ||
                            std::find(scope_.fields.begin(), scope_.fields.end(), id) != scope_.fields.end());
      if (visible) {
        n.op = Op::kField;
        n.field = id;
        n.type = scope_.names->type(id) == FieldNames::Type::kNumber ? Type::kNumber : Type::kString;
        return add(std::move(n));
      }
    }
    fail(pos, fmt::format("unknown field '{}'{}", path, suggestion(name, false)));
  }

  std::string_view text_;
  const Scope& scope_;
  size_t at_ = 0;
  size_t depth_ = 0;
  Token tok_;
};

bool isKnown(Type t) { return t == Type::kBool || t == Type::kNumber || t == Type::kString; }

}  // namespace

// Types the tree, emits code. Friend of Program.
class Compiler {
 public:
  Compiler(Parser& parser, Program& program) : p_(parser), out_(program) {}

  Type check(uint32_t index) {
    Node& n = p_.nodes[index];
    switch (n.kind) {
      case NodeKind::kConst:
      case NodeKind::kName:
        return n.type;
      case NodeKind::kUnary: {
        const Type t = check(n.kids[0]);
        if (t == Type::kString || t == Type::kBool)
          p_.fail(n.pos, fmt::format("'-' needs a number, not {}", typeName(t)));
        return n.type = Type::kNumber;
      }
      case NodeKind::kNot: {
        const Type t = check(n.kids[0]);
        needCondition(t, n.pos, "'not'");
        return n.type = Type::kBool;
      }
      case NodeKind::kAnd:
      case NodeKind::kOr: {
        const std::string_view word = n.kind == NodeKind::kAnd ? "'and'" : "'or'";
        needCondition(check(n.kids[0]), p_.nodes[n.kids[0]].pos, word);
        needCondition(check(n.kids[1]), p_.nodes[n.kids[1]].pos, word);
        return n.type = Type::kBool;
      }
      case NodeKind::kBinary:
        return n.type = checkBinary(n);
      case NodeKind::kTernary: {
        needCondition(check(n.kids[0]), p_.nodes[n.kids[0]].pos, "'?'");
        const Type a = check(n.kids[1]);
        const Type b = check(n.kids[2]);
        if (a == b) return n.type = a;
        if (a == Type::kNull) return n.type = b;
        if (b == Type::kNull) return n.type = a;
        return n.type = Type::kAny;
      }
      case NodeKind::kIn: {
        const Type x = check(n.kids[0]);
        if (x == Type::kNull) p_.fail(n.pos, "'in' on null is never true");
        for (size_t i = 1; i < n.kids.size(); ++i) {
          const Node& item = p_.nodes[n.kids[i]];
          if (isKnown(x) && item.type != x)
            p_.fail(item.pos,
                    fmt::format("the list holds {} but the value is {}", typeName(item.type), typeName(x)));
        }
        return n.type = Type::kBool;
      }
      case NodeKind::kCall:
        return n.type = checkCall(n);
    }
    return Type::kAny;
  }

  void needCondition(Type t, size_t pos, std::string_view word) {
    if (t == Type::kNumber || t == Type::kString)
      p_.fail(pos, fmt::format("{} needs a condition (true or false), not {}", word, typeName(t)));
  }

  Type checkBinary(const Node& n) {
    const Type a = check(n.kids[0]);
    const Type b = check(n.kids[1]);
    const size_t pos = n.pos;
    switch (n.op) {
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
      case Op::kMod:
        for (Type t : {a, b})
          if (t == Type::kString || t == Type::kBool)
            p_.fail(pos, fmt::format("arithmetic needs numbers, not {}", typeName(t)));
        return Type::kNumber;
      case Op::kEq:
      case Op::kNe:
        if (isKnown(a) && isKnown(b) && a != b)
          p_.fail(pos, fmt::format("compares {} with {}: never equal", typeName(a), typeName(b)));
        return Type::kBool;
      default:  // < <= > >=
        for (Type t : {a, b})
          if (t == Type::kBool) p_.fail(pos, "booleans have no order: compare with '==' or '!='");
        if (isKnown(a) && isKnown(b) && a != b)
          p_.fail(pos, fmt::format("compares {} with {}", typeName(a), typeName(b)));
        return Type::kBool;
    }
  }

  Type checkCall(const Node& n) {
    const FunctionInfo* info = nullptr;
    for (const auto& f : kFunctions)
      if (f.fn == n.fn) info = &f;
    Type common = Type::kNull;
    bool mixed = false;
    for (uint32_t kid : n.kids) {
      const Type t = check(kid);
      if (info->arg_type != Type::kAny && isKnown(t) && t != info->arg_type)
        p_.fail(p_.nodes[kid].pos,
                fmt::format("{}() needs {}, not {}", info->name, typeName(info->arg_type), typeName(t)));
      if (t == Type::kNull) continue;
      if (common == Type::kNull)
        common = t;
      else if (common != t)
        mixed = true;
    }
    if (info->fn == Fn::kCoalesce) return mixed ? Type::kAny : common;
    return info->result;
  }

  void emit(uint32_t index) {
    const Node& n = p_.nodes[index];
    switch (n.kind) {
      case NodeKind::kConst:
        push({.op = Op::kConst, .b = n.constant}, 1);
        return;
      case NodeKind::kName:
        push({.op = n.op, .a = n.field, .b = n.constant}, 1);
        return;
      case NodeKind::kUnary:
        emit(n.kids[0]);
        push({.op = n.op}, 0);
        return;
      case NodeKind::kNot:
        emit(n.kids[0]);
        push({.op = Op::kNot}, 0);
        return;
      case NodeKind::kBinary:
        emit(n.kids[0]);
        emit(n.kids[1]);
        push({.op = n.op}, -1);
        return;
      case NodeKind::kAnd:
      case NodeKind::kOr: {
        emit(n.kids[0]);
        const size_t jump = out_.code_.size();
        push({.op = n.kind == NodeKind::kAnd ? Op::kAndJump : Op::kOrJump}, -1);
        emit(n.kids[1]);
        push({.op = Op::kToBool}, 0);
        out_.code_[jump].b = static_cast<uint32_t>(out_.code_.size());
        return;
      }
      case NodeKind::kTernary: {
        emit(n.kids[0]);
        const size_t to_else = out_.code_.size();
        push({.op = Op::kJumpUnless}, -1);
        emit(n.kids[1]);
        const size_t to_end = out_.code_.size();
        push({.op = Op::kJump}, -1);  // the 'else' branch pushes the value again
        out_.code_[to_else].b = static_cast<uint32_t>(out_.code_.size());
        emit(n.kids[2]);
        out_.code_[to_end].b = static_cast<uint32_t>(out_.code_.size());
        return;
      }
      case NodeKind::kIn: {
        emit(n.kids[0]);
        // The list's constants were added in order, so they are consecutive.
        const uint32_t first = p_.nodes[n.kids[1]].constant;
        push({.op = Op::kIn,
              .argc = static_cast<uint8_t>(n.negated ? 1 : 0),
              .a = static_cast<uint16_t>(n.kids.size() - 1),
              .b = first},
             0);
        return;
      }
      case NodeKind::kCall:
        for (uint32_t kid : n.kids) emit(kid);
        push({.op = Op::kCall, .argc = static_cast<uint8_t>(n.kids.size()), .a = static_cast<uint16_t>(n.fn)},
             1 - static_cast<int>(n.kids.size()));
        return;
    }
  }

  void finish(std::string_view text, Type result, FieldId attrs_field) {
    out_.attrs_field_ = attrs_field;
    out_.text_ = std::string(text);
    out_.result_type_ = result;
    out_.max_stack_ = max_depth_;
    out_.pool_ = std::make_unique<char[]>(p_.pool.size() + 1);
    std::memcpy(out_.pool_.get(), p_.pool.data(), p_.pool.size());
    const char* pool = out_.pool_.get();
    for (const PendingConstant& c : p_.constants) {
      switch (c.type) {
        case Type::kNumber:
          out_.constants_.push_back(Value::num(c.number));
          break;
        case Type::kBool:
          out_.constants_.push_back(Value::boolean(c.number != 0));
          break;
        case Type::kString:
          out_.constants_.push_back(Value::string(std::string_view(pool + c.offset, c.len)));
          break;
        default:
          out_.constants_.push_back(Value::null());
      }
    }
    for (const auto& [offset, len] : p_.attr_names) out_.names_.emplace_back(pool + offset, len);
  }

  size_t maxDepth() const { return max_depth_; }

 private:
  void push(Instruction ins, int stack_change) {
    // Instructions that push count before they pop (a call's arguments are already there).
    out_.code_.push_back(ins);
    depth_ += stack_change;
    if (depth_ > static_cast<int>(max_depth_)) max_depth_ = static_cast<size_t>(depth_);
  }

  Parser& p_;
  Program& out_;
  int depth_ = 0;
  size_t max_depth_ = 0;
};

bool isReservedName(std::string_view name) {
  for (const auto& [builtin, op] : kBuiltins)
    if (name == builtin) return true;
  for (std::string_view word : kKeywords)
    if (name == word) return true;
  for (std::string_view prefix : kScopePrefixes)
    if (name == prefix.substr(0, prefix.size() - 1)) return true;
  return name == "attrs";
}

Result<Program> compile(std::string_view text, const Scope& scope, bool want_bool) {
  auto at = [&](size_t pos, std::string_view message) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < pos && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return Error(fmt::format("{}:{}: {}", line, column, message));
  };
  if (text.size() > kMaxTextBytes)
    return at(kMaxTextBytes, fmt::format("the expression is longer than {} bytes", kMaxTextBytes));
  Program program;
  Parser parser(text, scope);
  try {
    const uint32_t root = parser.parseAll();
    Compiler compiler(parser, program);
    const Type result = compiler.check(root);
    if (want_bool && (result == Type::kNumber || result == Type::kString || result == Type::kNull))
      parser.fail(
          0, fmt::format("the expression must be a condition (true or false), not {}", typeName(result)));
    compiler.emit(root);
    if (compiler.maxDepth() > kMaxStack)
      parser.fail(0, fmt::format("the expression needs more than {} stack slots", kMaxStack));
    compiler.finish(text, result, scope.attrs_field);
  } catch (const CompileError& e) {
    return at(e.pos, e.message);
  }
  return program;
}

}  // namespace ganglion::edge::expr
