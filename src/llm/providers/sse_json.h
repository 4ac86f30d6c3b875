// The first step the SSE stream decoders share (Anthropic, Gemini): each event's data is a
// JSON object. Worker thread, inside ChatStreamDecoder::feed.
#pragma once

#include <boost/json.hpp>
#include <optional>
#include <string_view>

#include "http/sse.h"
#include "llm/api_error.h"

namespace ganglion::llm {

/// Feeds `bytes` to `sse` and calls `on_event(object, err)` with each event's data parsed as
/// a JSON object, until `done()` is true or `err` is set: by `on_event`, by an event whose
/// data is not a JSON object, or by one over the parser's size limit. Returns `err`.
template <typename Done, typename OnEvent>
ApiResult feedJsonEvents(http::SseParser& sse, std::string_view bytes, Done&& done, OnEvent&& on_event) {
  ApiResult err;
  bool ok = sse.feed(bytes, [&](const http::SseEvent& e) {
    if (!err.ok() || done()) return;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(e.data, ec);
    if (ec || !v.is_object()) {
      err = badProviderAnswer("a stream event that is not a JSON object");
      return;
    }
    on_event(v.get_object(), err);
  });
  if (!ok && err.ok()) err = badProviderAnswer("a stream event over the size limit");
  return err;
}

}  // namespace ganglion::llm
