// Anthropic's Messages API (POST /v1/messages, x-api-key, anthropic-version). Requests are
// translated from the OpenAI form (system messages lifted out, tool calls and results as
// tool_use / tool_result blocks, consecutive turns of one role merged, images as blocks);
// answers, whole or streamed (message_start ... message_stop, input_json_delta), come back as
// OpenAI chat completions and chunks with usage including cache reads and writes.
#pragma once

#include "llm/provider.h"

namespace ganglion::llm {

class AnthropicCodec final : public ProviderCodec {
 public:
  explicit AnthropicCodec(const llm::ProviderConfig& provider);
  ApiResult chatRequest(const ChatRequest& req, std::string_view model, ProviderRequest& out) const override;
  ApiResult chatResponse(std::string_view body, std::string& out, Usage& usage) const override;
  std::unique_ptr<ChatStreamDecoder> chatStream() const override;
  ApiResult embeddingsRequest(const EmbeddingsRequest& req, std::string_view model,
                              ProviderRequest& out) const override;
  ApiResult embeddingsResponse(std::string_view body, std::string& out, Usage& usage) const override;
  ApiError error(int status, std::string_view body) const override;

  static constexpr std::string_view kVersion = "2023-06-01";
  static constexpr uint64_t kDefaultMaxTokens = 4096;  ///< Anthropic requires max_tokens

 private:
  std::string base_path_;
  std::string api_key_;
  std::string version_;
};

/// Anthropic's stop_reason as an OpenAI finish_reason.
std::string_view finishFromAnthropic(std::string_view stop_reason);

/// Anthropic `usage` (input, output, cache read and creation) as gateway usage; the prompt
/// count includes cached and cache-written tokens, as OpenAI's does.
Usage usageFromAnthropic(const boost::json::object& usage);

}  // namespace ganglion::llm
