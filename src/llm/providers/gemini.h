// Google's Gemini API (generateContent, streamGenerateContent?alt=sse, batchEmbedContents;
// x-goog-api-key). OpenAI requests become contents with user/model roles, a
// systemInstruction, functionDeclarations (JSON Schema parameters) and a generationConfig;
// answers come back as OpenAI completions and chunks. Gemini has no end-of-stream marker:
// the event carrying finishReason ends the answer, and usageMetadata totals are taken from it.
#pragma once

#include "llm/provider.h"

namespace ganglion::llm {

class GeminiCodec final : public ProviderCodec {
 public:
  explicit GeminiCodec(const llm::ProviderConfig& provider);
  ApiResult chatRequest(const ChatRequest& req, std::string_view model, ProviderRequest& out) const override;
  ApiResult chatResponse(std::string_view body, std::string& out, Usage& usage) const override;
  std::unique_ptr<ChatStreamDecoder> chatStream() const override;
  ApiResult embeddingsRequest(const EmbeddingsRequest& req, std::string_view model,
                              ProviderRequest& out) const override;
  ApiResult embeddingsResponse(std::string_view body, std::string& out, Usage& usage) const override;
  ApiError error(int status, std::string_view body) const override;

 private:
  std::string base_path_;
  std::string api_key_;
};

/// Gemini's finishReason as an OpenAI finish_reason (`tools`: the answer called functions).
std::string_view finishFromGemini(std::string_view reason, bool tools);

/// usageMetadata as gateway usage: thoughts count as completion (and reasoning) tokens.
Usage usageFromGemini(const boost::json::object& usage_metadata);

}  // namespace ganglion::llm
