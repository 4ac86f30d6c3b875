// libFuzzer target for http::Http1Parser. The input is one byte stream from a peer, fed the
// way a connection feeds it (keep the unconsumed tail, reset() after each message, stop at
// the first error), once as requests and once as responses, each under three splittings:
// all at once, one byte at a time, and pieces whose sizes come from the data. Checks:
//   - consumed <= the bytes passed to feed(); body spans lie inside the consumed bytes;
//   - body bytes never exceed the bytes fed, nor a message's Content-Length, nor 0 for a
//     response to HEAD;
//   - once kError, feed()/finish() keep returning kError, consuming nothing;
//   - no stall: kNeedMore that consumes nothing of non-empty input means a busy loop;
//   - the outcome (heads, bodies, completions, whether it failed) does not depend on the split.
// Run by scripts/fuzz.sh; a failed check calls __builtin_trap() so libFuzzer saves the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/http1_parser.h"
#include "http/path.h"

using ganglion::http::Http1Parser;
using ganglion::http::ParseEvent;
using ganglion::http::ParseLimits;

namespace {

enum class Split { kWhole, kBytewise, kData };

// GANGLION_FUZZ_TRACE=1 prints every step, for reading a saved crash input.
const bool kTrace = std::getenv("GANGLION_FUZZ_TRACE") != nullptr;
const char* name(ParseEvent e) {
  switch (e) {
    case ParseEvent::kNeedMore:
      return "need-more";
    case ParseEvent::kHead:
      return "head";
    case ParseEvent::kComplete:
      return "complete";
    case ParseEvent::kError:
      return "error";
  }
  return "?";
}

// What a parse produced, in a form that must be the same however the input was split.
// A message's body is logged when the message completes (or the input ends): a feed() that
// ends in kError may have parsed body bytes before the error, which the connection drops,
// so how much body precedes an error legitimately depends on the split.
struct Transcript {
  std::string log;
  std::string body;  // the current message's body so far
  size_t body_total = 0;
};

void recordHead(Http1Parser& p, Http1Parser::Kind kind, Transcript& t) {
  t.log += "H|";
  if (kind == Http1Parser::Kind::kRequest) {
    auto& r = p.request();
    t.log += r.method + "|" + r.target + "|" + std::to_string(r.version_major) + "." +
             std::to_string(r.version_minor) + "|" + (r.chunked ? "c" : "-") +
             (r.has_content_length ? "l" + std::to_string(r.content_length) : "-") +
             (r.keep_alive ? "k" : "-") + (r.upgrade ? "u" : "-");
    for (auto& h : r.headers) t.log += "|" + h.name + ":" + h.value;
  } else {
    auto& r = p.response();
    t.log += std::to_string(r.status) + "|" + r.reason + "|" + std::to_string(r.version_major) + "." +
             std::to_string(r.version_minor) + "|" + (r.chunked ? "c" : "-") +
             (r.has_content_length ? "l" + std::to_string(r.content_length) : "-") +
             (r.keep_alive ? "k" : "-");
    for (auto& h : r.headers) t.log += "|" + h.name + ":" + h.value;
  }
  t.log += "\n";
}

Transcript run(const uint8_t* data, size_t size, Http1Parser::Kind kind, Split split, bool head_request,
               bool tight_limits, bool call_finish) {
  ParseLimits limits;
  if (tight_limits) {
    limits.max_head_bytes = 96;
    limits.max_uri_bytes = 24;
    limits.max_headers = 3;
  }
  Http1Parser parser(kind, limits);
  if (kTrace)
    std::fprintf(stderr, "%s, split %d, HEAD %d, tight %d, finish %d\n",
                 kind == Http1Parser::Kind::kRequest ? "request" : "response", int(split), head_request,
                 tight_limits, call_finish);
  const bool is_response = kind == Http1Parser::Kind::kResponse;
  if (is_response && head_request) parser.expectNoBody();

  Transcript t;
  std::string pending;  // bytes received but not yet consumed, like a connection's buffer
  size_t fed = 0;       // bytes received so far
  size_t pos = 0;
  bool failed = false;
  // Per message: body bytes so far and, once the head is known, what limits them.
  size_t msg_body = 0;
  bool have_head = false;
  bool limit_known = false;
  uint64_t limit = 0;

  auto checkError = [&]() {
    if (kTrace)
      std::fprintf(stderr, "  error %d: %.*s\n", parser.errorStatus(), int(parser.errorReason().size()),
                   parser.errorReason().data());
    CHECK(parser.errorStatus() >= 400 && parser.errorStatus() <= 599);
    auto again = parser.feed(pending);
    if (kTrace) std::fprintf(stderr, "  feed again -> %s\n", name(again.event));
    CHECK(again.event == ParseEvent::kError && again.consumed == 0);
    again = parser.feed("GET / HTTP/1.1\r\n\r\n");
    CHECK(again.event == ParseEvent::kError && again.consumed == 0);
    again = parser.finish();
    CHECK(again.event == ParseEvent::kError && again.consumed == 0);
    // Only that it failed: which check fires first may depend on the split (a URI over the
    // limit gets 414 if llhttp hands it over before reaching a bad byte in it, else 400).
    t.body.clear();
    t.log += "E\n";
    failed = true;
  };

  auto onHead = [&]() {
    recordHead(parser, kind, t);
    have_head = true;
    if (is_response) {
      auto& r = parser.response();
      if (r.status >= 100 && r.status < 200 && r.status != 101) {
        // An interim response (100, 103): like the proxy, start over and wait for the final
        // one (llhttp itself would read a body after a 100 with a Content-Length).
        t.log += "I\n";
        parser.reset();
        if (head_request) parser.expectNoBody();
        have_head = false;
        return;
      }
      if (r.status == 204 || r.status == 304) {
        // llhttp 8 reads a body after a 204/304 that has Content-Length or chunked (Node's
        // client skips it itself), and Http1Parser passes that on. The proxy treats such a
        // response as complete at its head and resets the parser before reusing the
        // connection, so do the same here (see tests/fuzz/crashes/README.md).
        t.log += "N\n";
        parser.reset();
        if (head_request) parser.expectNoBody();
        have_head = false;
        return;
      }
      if (head_request) {
        limit_known = true;
        limit = 0;
      } else if (r.has_content_length && !r.chunked) {
        limit_known = true;
        limit = r.content_length;
      }
    } else {
      auto& r = parser.request();
      if (r.has_content_length && !r.chunked) {
        limit_known = true;
        limit = r.content_length;
      } else if (!r.chunked) {
        limit_known = true;  // a request without a length has no body (RFC 9112 6.3)
        limit = 0;
      }
    }
  };

  auto countBody = [&](const char* base, size_t consumed) {
    for (auto piece : parser.body()) {
      // body() points into the data passed to the last feed(), within what it consumed.
      CHECK(piece.data() >= base && piece.data() + piece.size() <= base + consumed);
      t.body_total += piece.size();
      msg_body += piece.size();
      t.body.append(piece.data(), piece.size());
    }
    CHECK(t.body_total <= fed);
    if (limit_known) CHECK(msg_body <= limit);
  };

  auto onComplete = [&]() {
    CHECK(have_head);
    t.log += t.body + "C\n";
    t.body.clear();
    parser.reset();
    if (is_response && head_request) parser.expectNoBody();
    msg_body = 0;
    have_head = limit_known = false;
    limit = 0;
  };

  // Drains `pending` as far as the parser goes; false once the parser has failed.
  auto drain = [&]() {
    int stalls = 0;
    for (int guard = 0; guard < 100000; ++guard) {
      if (pending.empty()) return true;
      auto step = parser.feed(pending);
      if (kTrace)
        std::fprintf(stderr, "  feed(%zu) -> %s, consumed %zu, body pieces %zu\n", pending.size(),
                     name(step.event), step.consumed, parser.body().size());
      CHECK(step.consumed <= pending.size());
      if (step.event == ParseEvent::kError) {
        CHECK(step.consumed == 0);
        checkError();
        return false;
      }
      countBody(pending.data(), step.consumed);
      if (step.event == ParseEvent::kHead) onHead();
      pending.erase(0, step.consumed);
      if (step.event == ParseEvent::kComplete) onComplete();
      if (step.event == ParseEvent::kNeedMore) {
        if (step.consumed == 0) {
          // The connection loops straight back into feed() while input remains.
          CHECK(++stalls < 3);
        } else {
          stalls = 0;
        }
      } else {
        stalls = 0;
      }
    }
    CHECK(!"no end to the feed loop");
    return false;
  };

  // Piece sizes: all, one byte, or driven by the byte at the piece start (1..64 bytes,
  // scaled by the first byte so the fuzzer can steer the overall granularity).
  const size_t scale = size ? 1 + (data[0] & 0x07) : 1;
  while (pos < size && !failed) {
    size_t n = size - pos;
    if (split == Split::kBytewise) n = 1;
    if (split == Split::kData) n = std::min(n, 1 + (data[pos] * scale) % 64);
    pending.append(reinterpret_cast<const char*>(data) + pos, n);
    pos += n;
    fed += n;
    if (!drain()) break;
  }
  if (!failed && call_finish) {
    auto step = parser.finish();
    if (kTrace) std::fprintf(stderr, "  finish() -> %s\n", name(step.event));
    CHECK(step.consumed == 0);
    if (step.event == ParseEvent::kError) {
      checkError();
    } else {
      countBody(pending.data(), 0);
      if (step.event == ParseEvent::kComplete) onComplete();
    }
  }
  t.log += t.body;  // a message the input ended in the middle of
  return t;
}

}  // namespace

/// normalisePath on any bytes as a path: the result is in normal form (no "//", no "." or ".."
/// segment, no encoded unreserved character left), normalising it again changes nothing, and
/// the query is kept byte for byte.
void checkPathNormalForm(std::string_view input) {
  std::string target = "/" + std::string(input.substr(0, input.find('\0')));
  const std::string before = target;
  ganglion::http::normalisePath(target);
  CHECK(!target.empty() && target[0] == '/');
  const size_t q = target.find('?');
  const std::string_view path = std::string_view(target).substr(0, q);
  CHECK(path.find("//") == std::string_view::npos);
  CHECK(path.find("/./") == std::string_view::npos && path.find("/../") == std::string_view::npos);
  CHECK(!path.ends_with("/.") && !path.ends_with("/.."));
  CHECK(before.substr(before.find('?') == std::string::npos ? before.size() : before.find('?')) ==
        target.substr(q == std::string::npos ? target.size() : q));
  std::string again = target;
  CHECK(!ganglion::http::normalisePath(again));
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  // Options from the last byte, so raw HTTP seeds parse unchanged (they end in '\n' = 0x0a:
  // finish() on, HEAD off, normal limits).
  uint8_t opts = size ? data[size - 1] : 0;
  bool call_finish = opts & 0x02;
  bool head_request = opts & 0x04;
  bool tight_limits = (opts & 0x30) == 0x30;
  for (auto kind : {Http1Parser::Kind::kRequest, Http1Parser::Kind::kResponse}) {
    Transcript whole = run(data, size, kind, Split::kWhole, head_request, tight_limits, call_finish);
    Transcript bytes = run(data, size, kind, Split::kBytewise, head_request, tight_limits, call_finish);
    Transcript piece = run(data, size, kind, Split::kData, head_request, tight_limits, call_finish);
    if (whole.log != bytes.log || whole.log != piece.log) {
      std::fprintf(stderr, "split-dependent parse (%s)\n--- whole:\n%s\n--- bytewise:\n%s\n--- pieces:\n%s\n",
                   kind == Http1Parser::Kind::kRequest ? "request" : "response", whole.log.c_str(),
                   bytes.log.c_str(), piece.log.c_str());
      __builtin_trap();
    }
  }
  checkPathNormalForm(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
