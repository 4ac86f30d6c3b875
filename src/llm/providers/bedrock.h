// AWS Bedrock's Converse API (POST /model/{id}/converse and /converse-stream), signed with
// SigV4. OpenAI requests become Converse messages (system, text/image/toolUse/toolResult
// blocks, inferenceConfig, toolConfig); answers, whole or as AWS event-stream frames (each
// checked by its two CRC32s), come back as OpenAI completions and chunks. Embeddings go to
// InvokeModel (/model/{id}/invoke) for Amazon Titan and Cohere embedding models.
#pragma once

#include <chrono>
#include <functional>

#include "llm/provider.h"

namespace ganglion::llm {

class BedrockCodec final : public ProviderCodec {
 public:
  explicit BedrockCodec(const llm::ProviderConfig& provider);
  ApiResult chatRequest(const ChatRequest& req, std::string_view model, ProviderRequest& out) const override;
  ApiResult chatResponse(std::string_view body, std::string& out, Usage& usage) const override;
  std::unique_ptr<ChatStreamDecoder> chatStream() const override;
  ApiResult embeddingsRequest(const EmbeddingsRequest& req, std::string_view model,
                              ProviderRequest& out) const override;
  ApiResult embeddingsResponse(std::string_view body, std::string& out, Usage& usage) const override;
  ApiError error(int status, std::string_view body) const override;

  /// For tests: a fixed signing time.
  void setClockForTesting(std::function<std::chrono::system_clock::time_point()> now) {
    now_ = std::move(now);
  }

 private:
  /// Sets out.path to /model/{model}/{action} and signs out.body with SigV4.
  void sign(std::string_view model, std::string_view action, ProviderRequest& out) const;

  std::string host_, base_path_, region_, access_key_, secret_key_, session_token_;
  std::function<std::chrono::system_clock::time_point()> now_ = [] {
    return std::chrono::system_clock::now();
  };
};

/// The parts of a SigV4 signature, exposed for the documented test vectors.
struct SigV4Input {
  std::string method, canonical_uri, canonical_query;
  std::vector<std::pair<std::string, std::string>> headers;  ///< lower-case names, trimmed values
  std::string_view payload;
  std::string amz_date;  ///< yyyymmddThhmmssZ
  std::string region, service, access_key, secret_key;
};
struct SigV4Output {
  std::string canonical_request, string_to_sign, signature, authorization;
};
SigV4Output signV4(const SigV4Input& in);

/// RFC 3986 percent-encoding of every byte outside A-Z a-z 0-9 - _ . ~ (and '/' when kept).
std::string uriEncode(std::string_view s, bool keep_slash);

/// One AWS event-stream message.
struct EventStreamMessage {
  std::string event_type;    ///< :event-type (or :exception-type for exceptions)
  std::string message_type;  ///< :message-type: event, exception or error
  std::string payload;
};

/// Incremental AWS event-stream framing (prelude, headers, payload, CRCs). Feed bytes split
/// anywhere; whole messages come out. A bad length or CRC fails the stream for good.
class EventStreamParser {
 public:
  /// Appends complete messages to `out`; false once the stream is malformed.
  bool feed(std::string_view bytes, std::vector<EventStreamMessage>& out);
  const std::string& error() const { return error_; }

 private:
  std::string buf_;
  std::string error_;
};

}  // namespace ganglion::llm
