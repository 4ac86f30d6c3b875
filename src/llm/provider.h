// The provider seam: one codec per provider kind translates the gateway's request form (a
// checked OpenAI chat request) into the provider's HTTP request, and the provider's answers
// (whole or streamed, success or error) back into OpenAI's shapes. Codecs are pure: no I/O,
// no clock, so their tests replay recorded bytes split anywhere.
#pragma once

#include <boost/json/object.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llm/api_error.h"
#include "llm/chat_request.h"
#include "llm/llm_config.h"
#include "llm/usage.h"
#include "upstream/buffered_request.h"

namespace ganglion::llm {

/// What to send to the provider: the gateway adds Host, Content-Type and Content-Length.
/// A request to a provider, held whole in memory (upstream/exchange.h).
using ProviderRequest = upstream::BufferedRequest;

/// Turns a provider's streamed answer into OpenAI chat.completion.chunk objects. One per call;
/// owns partial frames, so bytes may be split anywhere. Worker thread.
class ChatStreamDecoder {
 public:
  virtual ~ChatStreamDecoder() = default;
  /// Decodes `bytes`, appending whole chunks to `out` and folding reported usage into
  /// `usage`. Returns an error when the stream is malformed or the provider reported one
  /// mid-stream (the caller ends the client's stream with it).
  virtual ApiResult feed(std::string_view bytes, std::vector<boost::json::object>& out, Usage& usage) = 0;
  /// True once the provider's end-of-stream marker arrived ([DONE], message_stop, ...).
  virtual bool finished() const = 0;
};

/// One instance per configured provider; immutable and shared by every worker.
class ProviderCodec {
 public:
  virtual ~ProviderCodec() = default;

  /// The chat request for provider model `model` (streams ask the provider for usage even if
  /// the client did not; the gateway strips it again). An error when this provider cannot
  /// honour the request (n > 1 where it returns one choice, ...): the next target is tried,
  /// and the client gets the error if none can. Worker thread.
  virtual ApiResult chatRequest(const ChatRequest& req, std::string_view model,
                                ProviderRequest& out) const = 0;

  /// A successful non-streamed answer: `body` becomes OpenAI's chat.completion JSON text in
  /// `out` (the same bytes for OpenAI-compatible providers) and its usage in `usage`.
  virtual ApiResult chatResponse(std::string_view body, std::string& out, Usage& usage) const = 0;

  virtual std::unique_ptr<ChatStreamDecoder> chatStream() const = 0;

  /// The embeddings request in `out`, or an error (502 embeddings_unsupported) from a provider
  /// without an embeddings API.
  virtual ApiResult embeddingsRequest(const EmbeddingsRequest& req, std::string_view model,
                                      ProviderRequest& out) const = 0;
  virtual ApiResult embeddingsResponse(std::string_view body, std::string& out, Usage& usage) const = 0;

  /// A provider's error answer (status >= 400) as the client will see it: status kept,
  /// the provider's own message and type carried over.
  virtual ApiError error(int status, std::string_view body) const = 0;

  /// True for OpenAI-compatible providers: endpoints the gateway does not translate
  /// (/v1/responses) may be passed through to them.
  virtual bool openaiCompatible() const { return false; }
};

/// The codec for `provider.kind`. Main thread, when a snapshot is built.
std::unique_ptr<ProviderCodec> makeCodec(const llm::ProviderConfig& provider);

}  // namespace ganglion::llm
