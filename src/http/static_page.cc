#include "http/static_page.h"

#include <array>

namespace ganglion::http {

Task<void> StaticPage::serve(RoutedRequest& routed) {
  auto& conn = routed.conn;
  const auto& method = conn.request().method;
  if (method != "GET" && method != "HEAD") {
    HeaderList allow;
    allow.add("Allow", "GET, HEAD");
    co_return co_await conn.sendError(405, "method_not_allowed", "this page answers GET and HEAD", &allow);
  }
  ResponseHead head;
  head.status = 200;
  head.headers.add("Content-Type", content_type_);
  head.headers.add("Cache-Control", "no-store");
  head.has_content_length = true;
  head.content_length = page_.size();
  std::array<std::string_view, 1> body{page_};
  co_await conn.writeResponse(&head, body, true);
}

}  // namespace ganglion::http
