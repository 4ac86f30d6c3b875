// A pull-style wrapper over llhttp (Node's strict HTTP/1.1 parser): each feed() stops at the
// next event the caller must act on, so the connection code reads like a sequence of steps.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "http/headers.h"

namespace ganglion::http {

enum class ParseEvent {
  kNeedMore,  ///< all input consumed, message not finished; body() may hold data
  kHead,      ///< the head is complete: request()/response() are filled in
  kComplete,  ///< the message ended; body() may hold its last data
  kError,     ///< malformed or over a limit: see errorStatus()/errorReason()
};

struct ParseLimits {
  size_t max_head_bytes = 32 * 1024;
  size_t max_uri_bytes = 8 * 1024;
  size_t max_headers = 100;
};

/// One parser per connection direction, owned by the connection on its worker thread.
/// Body spans returned by body() point into the data passed to the last feed() call.
class Http1Parser {
 public:
  enum class Kind { kRequest, kResponse };
  explicit Http1Parser(Kind kind, ParseLimits limits = {});
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  struct Step {
    ParseEvent event;
    size_t consumed;  ///< bytes of the input used; the rest must be fed again
  };
  Step feed(std::string_view data);
  /// The peer closed: ends a read-until-close body, or reports a truncated message.
  Step finish();

  /// Body bytes (de-chunked) found by the last feed() call.
  std::span<const std::string_view> body() const { return body_; }
  RequestHead& request() { return request_; }
  const RequestHead& request() const { return request_; }
  ResponseHead& response() { return response_; }

  /// For responses: the request was HEAD, so the response has no body whatever it says.
  void expectNoBody() { no_body_ = true; }
  /// Readies the parser for the next message on the same connection (keeps capacity).
  void reset();

  int errorStatus() const { return error_status_; }
  std::string_view errorReason() const { return error_reason_; }
  bool midMessage() const { return started_; }
  /// The message ended with its head (a 204, 304 or 1xx answer, or one to HEAD): the next
  /// feed() reports kComplete without needing a byte. Its caller must not wait for a body.
  bool completePending() const { return complete_pending_; }

 private:
  static int onMessageBegin(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t len);
  static int onStatus(llhttp_t* p, const char* at, size_t len);
  static int onMethod(llhttp_t* p, const char* at, size_t len);
  static int onHeaderField(llhttp_t* p, const char* at, size_t len);
  static int onHeaderFieldComplete(llhttp_t* p);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t len);
  static int onMessageComplete(llhttp_t* p);
  static Http1Parser& self(llhttp_t* p) { return *static_cast<Http1Parser*>(p->data); }
  int fail(int status, std::string_view reason);
  bool countHeadBytes(size_t len);
  Step translate(llhttp_errno_t err, const char* data, size_t len);

  Kind kind_;
  ParseLimits limits_;
  llhttp_t parser_;
  llhttp_settings_t settings_;
  RequestHead request_;
  ResponseHead response_;
  std::vector<std::string_view> body_;
  size_t head_bytes_ = 0;
  bool in_head_ = true;
  bool in_name_ = false;
  bool head_done_ = false;
  bool message_done_ = false;
  bool started_ = false;
  bool no_body_ = false;
  bool complete_pending_ = false;
  int error_status_ = 0;
  std::string_view error_reason_;
  const char* feed_begin_ = nullptr;  ///< the data of the current feed()
  char before_feed_ = 0;              ///< the last byte of the previous feed() (obs-fold detection)
};

}  // namespace ganglion::http
