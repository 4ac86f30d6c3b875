// What each streaming endpoint does with a provider's stream, for the one relay loop in
// LlmHandler::relayStream: turn provider bytes into the client's bytes, say when the
// provider's stream is complete, and write the stream's last bytes. One per streamed call,
// on the worker thread that serves it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/sse.h"
#include "llm/anthropic_ingress.h"
#include "llm/api_error.h"
#include "llm/provider.h"
#include "llm/usage.h"

namespace ganglion::llm {

class StreamRelay {
 public:
  virtual ~StreamRelay() = default;
  /// Appends to `out` the client bytes `raw` makes, and folds reported usage into `usage`.
  /// An error when the provider reported one mid-stream or sent something unreadable.
  virtual ApiResult feed(std::string_view raw, Usage& usage, std::string& out) = 0;
  /// The provider's end-of-stream marker arrived.
  virtual bool done() const = 0;
  /// Appends the bytes that end the client's stream: after `error` when it failed (nullptr:
  /// it ended well; `usage` is final).
  virtual void end(const ApiError* error, const Usage& usage, std::string& out) = 0;
  /// Completion tokens to assume when the provider reported no usage (the client left).
  virtual uint64_t completionEstimate() const { return 0; }
};

/// /v1/chat/completions: decoded chunks re-encoded as OpenAI SSE, usage the client did not
/// ask for removed; ends with an error event (if any) and [DONE].
std::unique_ptr<StreamRelay> chatRelay(const ProviderCodec& codec, bool client_wants_usage);

/// /v1/messages: relayed event by event from an Anthropic provider (`native`), else decoded
/// chunks re-encoded as Anthropic events, message_start reporting `prompt_tokens` as
/// input_tokens; ends with message_stop or an error event.
std::unique_ptr<StreamRelay> messagesRelay(const ProviderCodec& codec, bool native, uint64_t prompt_tokens);

/// /v1/responses: events relayed as sent, except the provider's words in a response.failed
/// event, which pass through `redact`; usage and the end read from response.completed and its
/// siblings.
std::unique_ptr<StreamRelay> responsesRelay(std::function<std::string(std::string_view)> redact);

/// /v1/responses to a provider without the Responses API: its stream decoded into chat
/// chunks and re-encoded as Responses events (`request`: the client's body, echoed in the
/// response objects; must outlive the relay).
std::unique_ptr<StreamRelay> responsesFromChatRelay(const ProviderCodec& codec,
                                                    const boost::json::object& request,
                                                    std::string_view model);

}  // namespace ganglion::llm
