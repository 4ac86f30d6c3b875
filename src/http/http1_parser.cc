#include "http/http1_parser.h"

#include <array>

namespace ganglion::http {

Http1Parser::Http1Parser(Kind kind, ParseLimits limits) : kind_(kind), limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &onMessageBegin;
  settings_.on_url = &onUrl;
  settings_.on_status = &onStatus;
  settings_.on_method = &onMethod;
  settings_.on_header_field = &onHeaderField;
  settings_.on_header_value = &onHeaderValue;
  settings_.on_header_field_complete = &onHeaderFieldComplete;
  settings_.on_header_value_complete = &onHeaderValueComplete;
  settings_.on_headers_complete = &onHeadersComplete;
  settings_.on_body = &onBody;
  settings_.on_message_complete = &onMessageComplete;
  llhttp_init(&parser_, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  reset();
}

void Http1Parser::reset() {
  llhttp_reset(&parser_);
  request_.clear();
  response_.clear();
  body_.clear();
  head_bytes_ = 0;
  in_head_ = true;
  in_name_ = false;
  head_done_ = message_done_ = started_ = no_body_ = complete_pending_ = false;
  error_status_ = 0;
  error_reason_ = {};
  before_feed_ = 0;
}

int Http1Parser::fail(int status, std::string_view reason) {
  error_status_ = status;
  error_reason_ = reason;
  return -1;
}

bool Http1Parser::countHeadBytes(size_t len) {
  head_bytes_ += len;
  return head_bytes_ <= limits_.max_head_bytes;
}

int Http1Parser::onMessageBegin(llhttp_t* p) {
  self(p).started_ = true;
  return 0;
}

int Http1Parser::onMethod(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  s.request_.method.append(at, len);
  if (!s.countHeadBytes(len)) return s.fail(431, "request head too large");
  return 0;
}

int Http1Parser::onUrl(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  s.request_.target.append(at, len);
  if (s.request_.target.size() > s.limits_.max_uri_bytes) return s.fail(414, "request URI too long");
  if (!s.countHeadBytes(len)) return s.fail(431, "request head too large");
  return 0;
}

int Http1Parser::onStatus(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  s.response_.reason.append(at, len);
  if (!s.countHeadBytes(len)) return s.fail(502, "response head too large");
  return 0;
}

int Http1Parser::onHeaderField(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  int too_large = s.kind_ == Kind::kRequest ? 431 : 502;
  if (!s.countHeadBytes(len)) return s.fail(too_large, "header fields too large");
  if (!s.in_head_) return 0;  // trailer fields are not forwarded
  HeaderList& list = s.kind_ == Kind::kRequest ? s.request_.headers : s.response_.headers;
  if (s.in_name_) {
    list.back().name.append(at, len);  // a name split across two reads
    return 0;
  }
  if (list.size() >= s.limits_.max_headers) return s.fail(too_large, "too many header fields");
  list.add(std::string_view(at, len), {});
  s.in_name_ = true;
  return 0;
}

namespace {

/// RFC 9110 5.6.2 token characters, what a field name is made of: a table, since every
/// name byte of every request is looked up.
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool isTokenChar(char c) { return kTokenChars[static_cast<unsigned char>(c)]; }

}  // namespace

int Http1Parser::onHeaderFieldComplete(llhttp_t* p) {
  auto& s = self(p);
  s.in_name_ = false;
  if (!s.in_head_) return 0;
  HeaderList& list = s.kind_ == Kind::kRequest ? s.request_.headers : s.response_.headers;
  const int bad = s.kind_ == Kind::kRequest ? 400 : 502;
  // RFC 9112 5.1: no whitespace between a field name and its colon; a server must reject it.
  const std::string& name = list.back().name;
  if (name.empty() || name.back() == ' ' || name.back() == '\t')
    return s.fail(bad, "whitespace between header name and colon");
  // A name is a token: "X Foo" is two words that some servers read as one field and others
  // drop, which is how requests get smuggled past a check.
  for (char c : name)
    if (!isTokenChar(c)) return s.fail(bad, "invalid character in a header name");
  return 0;
}

int Http1Parser::onHeaderValueComplete(llhttp_t* p) {
  auto& s = self(p);
  if (!s.in_head_) return 0;
  HeaderList& list = s.kind_ == Kind::kRequest ? s.request_.headers : s.response_.headers;
  std::string& value = list.back().value;
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
  return 0;
}

int Http1Parser::onHeaderValue(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  if (!s.countHeadBytes(len)) return s.fail(s.kind_ == Kind::kRequest ? 431 : 502, "header fields too large");
  // Obsolete line folding (RFC 9112 5.2): llhttp passes a value's continuation line, which
  // starts right after a line break. A request with one is refused (as nginx does); a
  // response keeps the fold's text (a proxy may replace it with a space, which is what
  // joining the pieces amounts to).
  if (len > 0 && s.kind_ == Kind::kRequest) {
    const char before = at > s.feed_begin_ ? at[-1] : s.before_feed_;
    if (before == '\n') return s.fail(400, "obsolete line folding in a header field");
  }
  if (!s.in_head_) return 0;
  HeaderList& list = s.kind_ == Kind::kRequest ? s.request_.headers : s.response_.headers;
  list.back().value.append(at, len);
  return 0;
}

int Http1Parser::onHeadersComplete(llhttp_t* p) {
  auto& s = self(p);
  s.in_head_ = false;
  s.head_done_ = true;
  bool chunked = (p->flags & F_CHUNKED) != 0;
  bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  bool keep_alive = llhttp_should_keep_alive(p) != 0;
  if (s.kind_ == Kind::kRequest) {
    // RFC 9112 6.3: a request whose Transfer-Encoding does not end in chunked has no
    // knowable length; accepting it is how smuggling starts.
    if ((p->flags & F_TRANSFER_ENCODING) && !chunked)
      return s.fail(400, "Transfer-Encoding must end with chunked");
    auto& r = s.request_;
    // A framing field with no usable value (llhttp ignores an empty Transfer-Encoding, and a
    // server behind may not): the body's length is ambiguous.
    for (const auto& h : r.headers) {
      if (!iequals(h.name, "transfer-encoding")) continue;
      if (trim(h.value).empty()) return s.fail(400, "empty Transfer-Encoding header");
      // Only chunked is understood: relaying "gzip, chunked" as plain chunked would hand the
      // upstream compressed bytes as the body (RFC 9112 6.1: 501 for an unknown coding).
      for (std::string_view rest = h.value; !rest.empty();) {
        size_t comma = rest.find(',');
        std::string_view coding = trim(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        if (!iequals(coding, "chunked"))
          return s.fail(501, "transfer coding not supported (only chunked is)");
      }
    }
    if (p->http_major != 1) return s.fail(505, "HTTP version not supported");
    r.version_major = p->http_major;
    r.version_minor = p->http_minor;
    r.chunked = chunked;
    r.has_content_length = has_length;
    r.content_length = has_length ? p->content_length : 0;
    r.keep_alive = keep_alive;
    // llhttp sets p->upgrade only after this callback returns; derive it from the flags.
    r.upgrade = (p->flags & F_UPGRADE) && (p->flags & F_CONNECTION_UPGRADE);
  } else {
    auto& r = s.response_;
    r.status = p->status_code;
    r.version_major = p->http_major;
    r.version_minor = p->http_minor;
    r.chunked = chunked;
    r.has_content_length = has_length;
    r.content_length = has_length ? p->content_length : 0;
    r.keep_alive = keep_alive;
  }
  // Returning 1 tells llhttp the message has no body (a response to HEAD, or a 204/304 that
  // still names a length, RFC 9112 6.3); the message then completes at once and translate()
  // reports the head first, the completion next.
  bool bodiless_status = s.kind_ == Kind::kResponse &&
                         (p->status_code == 204 || p->status_code == 304 ||
                          (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101));
  return s.no_body_ || bodiless_status ? 1 : HPE_PAUSED;
}

int Http1Parser::onBody(llhttp_t* p, const char* at, size_t len) {
  self(p).body_.emplace_back(at, len);
  return 0;
}

int Http1Parser::onMessageComplete(llhttp_t* p) {
  auto& s = self(p);
  s.message_done_ = true;
  return HPE_PAUSED;
}

Http1Parser::Step Http1Parser::translate(llhttp_errno_t err, const char* data, size_t len) {
  if (err == HPE_OK) return {ParseEvent::kNeedMore, len};
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    size_t consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    if (err == HPE_PAUSED) llhttp_resume(&parser_);
    if (message_done_ && head_done_) {
      head_done_ = false;
      message_done_ = false;
      complete_pending_ = true;
      return {ParseEvent::kHead, consumed};
    }
    if (message_done_) {
      message_done_ = false;
      return {ParseEvent::kComplete, consumed};
    }
    if (head_done_) {
      head_done_ = false;
      return {ParseEvent::kHead, consumed};
    }
    return {ParseEvent::kNeedMore, consumed};
  }
  if (error_status_ == 0) {
    error_reason_ =
        llhttp_get_error_reason(&parser_) ? llhttp_get_error_reason(&parser_) : llhttp_errno_name(err);
    // 505 only for a well-formed version the gateway does not speak (HTTP/1.2, HTTP/3.0); a
    // malformed request line (HTTP/1, HTTP/01.01, bare CR line ends) is a 400.
    bool unsupported = err == HPE_INVALID_VERSION && error_reason_ == "Invalid HTTP version";
    if (err == HPE_PAUSED_H2_UPGRADE) {  // "PRI * HTTP/2.0": HTTP/2 with prior knowledge
      error_reason_ = "HTTP/2 is not spoken on this listener: send HTTP/1.1";
      unsupported = true;
    }
    error_status_ = kind_ == Kind::kResponse ? 502 : unsupported ? 505 : 400;
  }
  return {ParseEvent::kError, 0};
}

Http1Parser::Step Http1Parser::feed(std::string_view data) {
  body_.clear();
  if (error_status_ != 0) return {ParseEvent::kError, 0};
  if (complete_pending_) {
    complete_pending_ = false;
    return {ParseEvent::kComplete, 0};
  }
  feed_begin_ = data.data();
  auto err = llhttp_execute(&parser_, data.data(), data.size());
  auto step = translate(err, data.data(), data.size());
  // What the next feed starts after (the caller feeds the unconsumed rest again).
  if (step.consumed > 0) before_feed_ = data[step.consumed - 1];
  return step;
}

Http1Parser::Step Http1Parser::finish() {
  body_.clear();
  if (error_status_ != 0) return {ParseEvent::kError, 0};
  if (complete_pending_) {
    complete_pending_ = false;
    return {ParseEvent::kComplete, 0};
  }
  auto err = llhttp_finish(&parser_);
  if (err == HPE_OK && message_done_) {
    message_done_ = false;
    return {ParseEvent::kComplete, 0};
  }
  if (err == HPE_OK || err == HPE_PAUSED) {
    if (message_done_) {
      message_done_ = false;
      llhttp_resume(&parser_);
      return {ParseEvent::kComplete, 0};
    }
    if (!started_) return {ParseEvent::kNeedMore, 0};
  }
  error_status_ = kind_ == Kind::kRequest ? 400 : 502;
  error_reason_ = "connection closed before the message was complete";
  return {ParseEvent::kError, 0};
}

}  // namespace ganglion::http
