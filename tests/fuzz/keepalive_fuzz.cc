// libFuzzer target for keep-alive isolation: a request must look exactly as it would on a
// connection of its own, whatever requests came before it on the same connection. Guards
// against a HeaderList bug where clear() only reset a count while find()/get() scanned the
// whole backing vector, and remove() parked removed fields where find() still saw them, so
// a request with fewer header fields "inherited" the earlier request's (an unkeyed request
// passed key_auth as the previous request's key).
//
// Two checks on every input:
//   1. The input split on NUL bytes (a NUL is never valid in an HTTP head, so no request
//      loses anything) gives up to kMaxRequests requests. They go through ONE
//      Http1Parser(kRequest), reset() before each, fed as ServerConnection::run() feeds them
//      (stop at the head of a request without a body; read a body to its end), and each is
//      compared with the same bytes parsed alone by a FRESH parser: the outcome (error
//      status, head, body, completion), method, target, version, framing, keep-alive, every
//      header field in order, and find()/get()/has() for every field name seen in ANY of the
//      requests (plus the names the gateway itself looks up). find() must also agree with a
//      scan of the live fields [begin(), end()).
//   2. The input bytes as a program of add/set/remove/clear/back()-append/copy operations on
//      one HeaderList, checked after every step against a std::vector of pairs: size(),
//      iteration and find()/get()/has() for a pool of names (spelt as the data says) agree, so
//      nothing removed or cleared is ever visible. Values are unique, so a stale field of
//      the same name cannot pass for a live one.
// Options come from a last NUL-separated piece of one byte (0x01: feed each request in pieces
// sized by the data, 0x04: tight limits, 0x10: read bodiless requests to kComplete too);
// without one, requests are fed whole, stop at the head like the connection, normal limits.
// Run by scripts/fuzz.sh; a failed check calls __builtin_trap() so libFuzzer saves the input.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_check.h"
#include "http/headers.h"
#include "http/http1_parser.h"

using ganglion::iequals;
using ganglion::http::Header;
using ganglion::http::HeaderList;
using ganglion::http::Http1Parser;
using ganglion::http::ParseEvent;
using ganglion::http::ParseLimits;

namespace {

constexpr size_t kMaxRequests = 16;
constexpr size_t kMaxOps = 256;
constexpr size_t kMaxFields = 24;  // more only slows the checks down; reuse is what matters

// Names the gateway looks up itself (key_auth, the LLM API, the admin API, Expect, framing),
// so a stale copy of any of them is caught even when no request of the input spells it.
constexpr std::string_view kGatewayNames[] = {
    "host",           "authorization",     "x-api-key",         "expect",
    "x-request-id",   "x-ganglion-cache",  "anthropic-version", "anthropic-beta",
    "content-length", "transfer-encoding", "connection",        "upgrade"};

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ganglion::asciiLower(c);
  return out;
}

// find() must return the first live field of that name, and get()/has() must agree with it.
void checkLookups(const HeaderList& list, std::string_view name) {
  const Header* scanned = nullptr;
  for (const Header& h : list) {
    if (iequals(h.name, name)) {
      scanned = &h;
      break;
    }
  }
  const Header* found = list.find(name);
  CHECK(found == scanned);
  CHECK(list.has(name) == (scanned != nullptr));
  CHECK(list.get(name) == (scanned ? std::string_view(scanned->value) : std::string_view()));
}

// ---------------------------------------------------------------------------------------
// 1. requests in turn through one parser vs. each alone
// ---------------------------------------------------------------------------------------

struct Options {
  bool split = false;        // feed each request in data-driven pieces, not whole
  bool tight = false;        // small head, URI and field-count limits
  bool to_complete = false;  // also feed bodiless requests until kComplete (not just kHead)
};

ParseLimits limitsFor(const Options& o) {
  ParseLimits limits;
  if (o.tight) {
    limits.max_head_bytes = 96;
    limits.max_uri_bytes = 24;
    limits.max_headers = 3;
  }
  return limits;
}

// Everything a handler could see of the request, as text: equal texts, equal requests.
void describeHead(Http1Parser& p, const std::vector<std::string>& names, std::string& out) {
  const auto& r = p.request();
  out += "H|" + r.method + "|" + r.target + "|" + std::to_string(r.version_major) + "." +
         std::to_string(r.version_minor) + "|" + (r.chunked ? "c" : "-") +
         (r.has_content_length ? "l" + std::to_string(r.content_length) : "-") + (r.keep_alive ? "k" : "-") +
         (r.upgrade ? "u" : "-") + "|n" + std::to_string(r.headers.size()) + (r.headers.empty() ? "e" : "") +
         "\n";
  for (const Header& h : r.headers) out += "  " + h.name + ": " + h.value + "\n";
  for (const std::string& name : names) {
    checkLookups(r.headers, name);
    const Header* h = r.headers.find(name);
    out += "  find(" + name + ") = ";
    out += h ? "#" + std::to_string(h - r.headers.begin()) + " " + std::string(r.headers.get(name))
             : std::string("none");
    out += "\n";
  }
}

// Feeds one request the way the server connection does and describes what it saw. The
// connection reads a head, then (only if the request has a body) the body to its end; the
// next request starts with reset(). Bytes after the first message are not part of it.
std::string parseOne(Http1Parser& p, std::string_view bytes, const Options& o,
                     const std::vector<std::string>& names) {
  std::string out;
  std::string pending;
  bool have_head = false;
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t n = bytes.size() - pos;
    if (o.split) n = std::min(n, size_t{1} + static_cast<uint8_t>(bytes[pos]) % 23);
    pending.append(bytes.substr(pos, n));
    pos += n;
    while (!pending.empty()) {
      auto step = p.feed(pending);
      CHECK(step.consumed <= pending.size());
      if (step.event == ParseEvent::kError) {
        out += "E" + std::to_string(p.errorStatus()) + "\n";
        return out;
      }
      for (auto piece : p.body()) out.append(piece.data(), piece.size());
      pending.erase(0, step.consumed);
      if (step.event == ParseEvent::kHead) {
        have_head = true;
        describeHead(p, names, out);
        if (!p.request().hasBody() && !o.to_complete) return out;
      } else if (step.event == ParseEvent::kComplete) {
        // Trailer fields are dropped: the head must read the same at the end of the body.
        out += "C\n";
        describeHead(p, names, out);
        return out;
      } else if (step.consumed == 0) {
        break;  // kNeedMore: wait for more bytes
      }
    }
  }
  // The input ended. A message that ended with its head (to_complete) reports kComplete on
  // the next feed(), which needs no bytes (but a non-null pointer: llhttp does arithmetic on it).
  if (have_head && p.feed(std::string_view(pending.data(), 0)).event == ParseEvent::kComplete) {
    out += "C\n";
    describeHead(p, names, out);
    return out;
  }
  out += have_head ? "I-body\n" : "I-head\n";  // the client stopped mid-message
  return out;
}

void requestsInTurn(const uint8_t* data, size_t size, const Options& o) {
  std::vector<std::string_view> requests;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty() && requests.size() < kMaxRequests) {
    size_t nul = rest.find('\0');
    requests.push_back(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  }
  if (requests.empty()) return;

  // Every field name any request carries (as spelt, and lower-cased), from parses alone.
  std::set<std::string> name_set(std::begin(kGatewayNames), std::end(kGatewayNames));
  for (std::string_view bytes : requests) {
    Http1Parser alone(Http1Parser::Kind::kRequest, limitsFor(o));
    parseOne(alone, bytes, o, {});
    for (const Header& h : alone.request().headers) {
      name_set.insert(h.name);
      name_set.insert(lowered(h.name));
    }
  }
  name_set.insert("");  // an empty name matches nothing, live or stale
  const std::vector<std::string> names(name_set.begin(), name_set.end());

  Http1Parser shared(Http1Parser::Kind::kRequest, limitsFor(o));
  for (size_t i = 0; i < requests.size(); ++i) {
    shared.reset();
    std::string in_turn = parseOne(shared, requests[i], o, names);
    Http1Parser fresh(Http1Parser::Kind::kRequest, limitsFor(o));
    std::string alone = parseOne(fresh, requests[i], o, names);
    if (in_turn != alone) {
      std::fprintf(stderr,
                   "keepalive_fuzz: request %zu differs after %zu earlier request(s) on the "
                   "connection\n--- in turn:\n%s--- alone:\n%s",
                   i, i, in_turn.c_str(), alone.c_str());
      __builtin_trap();
    }
  }
}

// ---------------------------------------------------------------------------------------
// 2. HeaderList against a vector model
// ---------------------------------------------------------------------------------------

// Small pool, several spellings, so operations keep hitting fields of the same name.
constexpr std::string_view kPool[] = {
    "Host", "authorization", "X-API-Key",        "expect",           "x-request-id", "a",
    "b",    "A-B",           "x-ganglion-cache", "anthropic-version"};
constexpr size_t kPoolSize = sizeof(kPool) / sizeof(kPool[0]);

using Model = std::vector<std::pair<std::string, std::string>>;

std::string spelling(size_t index, uint8_t variant) {
  std::string s(kPool[index % kPoolSize]);
  for (size_t i = 0; i < s.size(); ++i) {
    if ((variant >> (i % 8)) & 1) {
      char c = s[i];
      s[i] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : ganglion::asciiLower(c);
    }
  }
  return s;
}

// `variant` picks the spelling of the looked-up names (lookups ignore case).
void checkAgainst(const HeaderList& list, const Model& model, uint8_t variant) {
  CHECK(list.size() == model.size());
  CHECK(list.empty() == model.empty());
  CHECK(static_cast<size_t>(list.end() - list.begin()) == model.size());
  size_t i = 0;
  for (const Header& h : list) {
    CHECK(h.name == model[i].first);
    CHECK(h.value == model[i].second);
    ++i;
  }
  for (size_t n = 0; n < kPoolSize; ++n) {
    std::string name = spelling(n, variant);
    const Header* found = list.find(name);
    auto it = std::find_if(model.begin(), model.end(), [&](const auto& f) { return iequals(f.first, name); });
    if (it == model.end()) {
      CHECK(found == nullptr);
      CHECK(list.get(name).empty());
      CHECK(!list.has(name));
    } else {
      CHECK(found == list.begin() + (it - model.begin()));
      CHECK(list.get(name) == it->second);
      CHECK(list.has(name));
    }
  }
  CHECK(list.find("") == nullptr);
  CHECK(list.find("no-such-field") == nullptr);
}

void headerListOps(const uint8_t* data, size_t size) {
  HeaderList list;
  Model model;
  uint64_t serial = 0;  // makes every value unique
  size_t i = 0;
  for (size_t ops = 0; i + 1 < size && ops < kMaxOps; ++ops) {
    uint8_t op = data[i++];
    uint8_t arg = data[i++];
    std::string name = spelling(arg % kPoolSize, op);
    // An empty value now and then: an empty stale value must not read as a live one either.
    std::string value = (arg & 0x80) ? std::string() : "v" + std::to_string(++serial);
    switch (op % 8) {
      case 0:
      case 1:
      case 2:
        if (model.size() >= kMaxFields) break;
        list.add(name, value);
        model.emplace_back(name, value);
        break;
      case 3:
        list.set(name, value);
        std::erase_if(model, [&](const auto& f) { return iequals(f.first, name); });
        model.emplace_back(name, value);
        break;
      case 4:
        list.remove(name);
        std::erase_if(model, [&](const auto& f) { return iequals(f.first, name); });
        break;
      case 5:
        list.clear();
        model.clear();
        break;
      case 6:
        // The parser appends a field split across reads to back().
        if (!model.empty()) {
          std::string more = "+" + std::to_string(++serial);
          if (arg & 1) {
            list.back().value += more;
            model.back().second += more;
          } else {
            list.back().name += "-x";
            model.back().first += "-x";
          }
        }
        break;
      case 7: {
        // A copy takes the spare storage along: it must hold the same fields, no more.
        HeaderList copy = list;
        checkAgainst(copy, model, arg);
        if (arg & 1) list = copy;
        break;
      }
    }
    checkAgainst(list, model, op ^ arg);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  // A last "request" of one byte holds the options; raw HTTP seeds get the defaults.
  Options o;
  size_t requests = size;
  if (size >= 2 && data[size - 2] == 0) {
    uint8_t opts = data[size - 1];
    o.split = opts & 0x01;
    o.tight = opts & 0x04;
    o.to_complete = opts & 0x10;
    requests = size - 2;
  }
  requestsInTurn(data, requests, o);
  headerListOps(data, size);
  return 0;
}
