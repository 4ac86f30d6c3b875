#include "http/http1_parser.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

namespace ganglion::http {
namespace {

struct Parsed {
  std::vector<ParseEvent> events;
  std::string body;
  int error = 0;
};

/// Feeds `input` in pieces of `step` bytes, as reads from a socket would deliver it.
Parsed feedInPieces(Http1Parser& p, const std::string& input, size_t step) {
  Parsed out;
  std::string pending;
  size_t pos = 0;
  while (pos < input.size() || !pending.empty()) {
    if (pos < input.size()) {
      pending += input.substr(pos, step);
      pos += step;
    }
    auto r = p.feed(pending);
    for (auto piece : p.body()) out.body += piece;
    pending.erase(0, r.consumed);
    if (r.event == ParseEvent::kError) {
      out.error = p.errorStatus();
      out.events.push_back(r.event);
      return out;
    }
    if (r.event != ParseEvent::kNeedMore) out.events.push_back(r.event);
    if (r.event == ParseEvent::kComplete) p.reset();
    if (r.event == ParseEvent::kNeedMore && pos >= input.size()) break;
  }
  return out;
}

TEST(Http1Parser, ParsesRequestHeadAndHeaders) {
  Http1Parser p(Http1Parser::Kind::kRequest);
  auto r = p.feed("GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  v  \r\n\r\n");
  ASSERT_EQ(r.event, ParseEvent::kHead);
  EXPECT_EQ(p.request().method, "GET");
  EXPECT_EQ(p.request().target, "/a/b?x=1");
  EXPECT_EQ(p.request().path(), "/a/b");
  EXPECT_EQ(p.request().headers.get("HOST"), "example.com");
  EXPECT_EQ(p.request().headers.get("x-thing"), "v");
  EXPECT_FALSE(p.request().hasBody());
  EXPECT_TRUE(p.request().keep_alive);
}

TEST(Http1Parser, ByteAtATimeGivesSameResult) {
  std::string req =
      "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  for (size_t step : {1u, 2u, 7u, 1000u}) {
    Http1Parser p(Http1Parser::Kind::kRequest);
    auto parsed = feedInPieces(p, req, step);
    ASSERT_EQ(parsed.error, 0) << "step " << step;
    ASSERT_EQ(parsed.events.size(), 2u) << "step " << step;
    EXPECT_EQ(parsed.events[0], ParseEvent::kHead);
    EXPECT_EQ(parsed.events[1], ParseEvent::kComplete);
    EXPECT_EQ(parsed.body, "hello world");
  }
}

TEST(Http1Parser, HeaderNameSplitAcrossReads) {
  Http1Parser p(Http1Parser::Kind::kRequest);
  auto r1 = p.feed("GET / HTTP/1.1\r\nX-Lo");
  EXPECT_EQ(r1.event, ParseEvent::kNeedMore);
  auto r2 = p.feed("ng-Name: va");
  EXPECT_EQ(r2.event, ParseEvent::kNeedMore);
  auto r3 = p.feed("lue\r\nEmpty:\r\nHost: h\r\n\r\n");
  ASSERT_EQ(r3.event, ParseEvent::kHead);
  EXPECT_EQ(p.request().headers.get("x-long-name"), "value");
  EXPECT_TRUE(p.request().headers.has("empty"));
  EXPECT_EQ(p.request().headers.get("host"), "h");
  EXPECT_EQ(p.request().headers.size(), 3u);
}

TEST(Http1Parser, PipelinedRequestsStopAtEachBoundary) {
  Http1Parser p(Http1Parser::Kind::kRequest);
  std::string two = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
  auto r = p.feed(two);
  ASSERT_EQ(r.event, ParseEvent::kHead);
  EXPECT_EQ(p.request().target, "/1");
  p.reset();
  auto r2 = p.feed(std::string_view(two).substr(r.consumed));
  ASSERT_EQ(r2.event, ParseEvent::kHead);
  EXPECT_EQ(p.request().target, "/2");
}

struct BadCase {
  const char* name;
  std::string input;
  int status;
};

class Http1ParserRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(Http1ParserRejects, WithStatus) {
  ParseLimits limits;
  limits.max_uri_bytes = 64;
  limits.max_head_bytes = 1024;
  limits.max_headers = 10;
  Http1Parser p(Http1Parser::Kind::kRequest, limits);
  auto parsed = feedInPieces(p, GetParam().input, 3);
  ASSERT_FALSE(parsed.events.empty());
  EXPECT_EQ(parsed.events.back(), ParseEvent::kError);
  EXPECT_EQ(parsed.error, GetParam().status);
  EXPECT_FALSE(p.errorReason().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, Http1ParserRejects,
    ::testing::Values(
        BadCase{"garbage", "GARBAGE\r\n\r\n", 400},
        BadCase{"no_colon", "GET / HTTP/1.1\r\nHost h\r\n\r\n", 400},
        BadCase{"bad_length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", 400},
        BadCase{"two_lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400},
        BadCase{
            "length_and_chunked",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400},
        BadCase{"gzip_only", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        BadCase{"bad_chunk", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        BadCase{"long_uri", "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n", 414},
        BadCase{"big_head", "GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n", 431},
        BadCase{"many_headers",
                [] {
                  std::string s = "GET / HTTP/1.1\r\n";
                  for (int i = 0; i < 20; ++i) s.append(fmt::format("H{}: v\r\n", i));
                  s.append("\r\n");
                  return s;
                }(),
                431},
        BadCase{"bare_lf_in_header", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400},
        BadCase{"space_before_colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
        BadCase{"bad_version", "GET / HTTP/9.9\r\n\r\n", 505},
        BadCase{"http_2_over_1", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
        // HTTP/2's connection preface (prior knowledge): 505, not 400 "Pause on PRI/Upgrade".
        BadCase{"http_2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
        // Malformed request lines are 400, not 505 (RFC 9112 3).
        BadCase{"version_without_minor", "GET / HTTP/1\r\nHost: h\r\n\r\n", 400},
        BadCase{"version_leading_zero", "GET / HTTP/01.01\r\nHost: h\r\n\r\n", 400},
        BadCase{"version_with_space", "GET / HTTP/ 1.1\r\nHost: h\r\n\r\n", 400},
        BadCase{"cr_only_lines", "GET / HTTP/1.1\rHost: h\r\r", 400},
        BadCase{"obs_fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n", 400},
        BadCase{"obs_fold_tab", "GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n", 400},
        BadCase{"space_in_name", "GET / HTTP/1.1\r\nHost: h\r\nX A: v\r\n\r\n", 400},
        BadCase{"empty_te_with_length",
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\nContent-Length: 3\r\n\r\nabc", 400},
        // Any two bytes after a chunk's data were taken as its CRLF (llhttp's lenient build):
        // "lo" was skipped and "AB0" read as the next chunk size, hiding a pipelined request.
        BadCase{"chunk_data_without_crlf",
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhelloAB0\r\n\r\n"
                "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
                400},
        BadCase{"chunk_data_then_lf_lf",
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n\n0\r\n\r\n",
                400}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Http1Parser, ValuesSplitAcrossReadsAreNotFolds) {
  // A value whose second piece starts with a space, split right there by the reads, is one
  // value: only a continuation line after a line break is obsolete folding.
  const std::string input = "GET / HTTP/1.1\r\nHost: h\r\nX-A: one two  three\r\n\r\n";
  for (size_t step = 1; step < 40; ++step) {
    Http1Parser p(Http1Parser::Kind::kRequest);
    std::string pending;
    bool head = false;
    for (size_t pos = 0; pos < input.size() && !head; pos += step) {
      pending += input.substr(pos, step);
      auto r = p.feed(pending);
      ASSERT_NE(r.event, ParseEvent::kError) << "step " << step << ": " << p.errorReason();
      pending.erase(0, r.consumed);
      head = r.event == ParseEvent::kHead;
    }
    ASSERT_TRUE(head) << "step " << step;
    EXPECT_EQ(p.request().headers.get("x-a"), "one two  three") << "step " << step;
  }
}

TEST(Http1Parser, ResponseWithLengthAndChunked) {
  Http1Parser p(Http1Parser::Kind::kResponse);
  auto parsed = feedInPieces(p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 4);
  ASSERT_EQ(parsed.events.size(), 2u);
  EXPECT_EQ(parsed.body, "hello");
  Http1Parser q(Http1Parser::Kind::kResponse);
  auto chunked =
      feedInPieces(q, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 5);
  EXPECT_EQ(chunked.body, "abc");
  ASSERT_EQ(chunked.events.size(), 2u);
}

TEST(Http1Parser, ResponseReadUntilCloseEndsOnFinish) {
  Http1Parser p(Http1Parser::Kind::kResponse);
  auto r = p.feed("HTTP/1.1 200 OK\r\n\r\n");
  ASSERT_EQ(r.event, ParseEvent::kHead);
  auto r2 = p.feed("some bytes");
  EXPECT_EQ(r2.event, ParseEvent::kNeedMore);
  ASSERT_EQ(p.body().size(), 1u);
  EXPECT_EQ(p.finish().event, ParseEvent::kComplete);
}

TEST(Http1Parser, TruncatedResponseIsAnError) {
  Http1Parser p(Http1Parser::Kind::kResponse);
  ASSERT_EQ(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").event, ParseEvent::kHead);
  EXPECT_EQ(p.finish().event, ParseEvent::kError);
}

TEST(Http1Parser, HeadResponseHasNoBody) {
  Http1Parser p(Http1Parser::Kind::kResponse);
  p.expectNoBody();
  std::string two = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  auto r = p.feed(two);
  ASSERT_EQ(r.event, ParseEvent::kHead);
  EXPECT_EQ(p.response().content_length, 100u);
}

}  // namespace
}  // namespace ganglion::http
