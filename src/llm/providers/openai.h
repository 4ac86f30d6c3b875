// OpenAI's chat completions and embeddings APIs, and every server that speaks them (Azure
// OpenAI deployments, vLLM, Ollama, llama.cpp, Groq, DeepSeek, Mistral, Together,
// OpenRouter). The gateway's request form is OpenAI's, so requests pass through with the
// model replaced and answers pass through untouched; usage is read on the way.
#pragma once

#include "llm/provider.h"

namespace ganglion::llm {

class OpenAiCodec final : public ProviderCodec {
 public:
  explicit OpenAiCodec(const llm::ProviderConfig& provider);
  ApiResult chatRequest(const ChatRequest& req, std::string_view model, ProviderRequest& out) const override;
  ApiResult chatResponse(std::string_view body, std::string& out, Usage& usage) const override;
  std::unique_ptr<ChatStreamDecoder> chatStream() const override;
  ApiResult embeddingsRequest(const EmbeddingsRequest& req, std::string_view model,
                              ProviderRequest& out) const override;
  ApiResult embeddingsResponse(std::string_view body, std::string& out, Usage& usage) const override;
  ApiError error(int status, std::string_view body) const override;
  bool openaiCompatible() const override { return true; }

  /// Path and credentials for `endpoint` ("chat/completions", "embeddings", "responses").
  void target(std::string_view endpoint, std::string_view model, ProviderRequest& out) const;

 private:
  bool azure_;
  std::string base_path_;
  std::string api_key_;
  std::string api_version_;
};

/// Turns an error body in OpenAI's shape (or anything else) into an ApiError with `status`.
ApiError openaiStyleError(int status, std::string_view body);

}  // namespace ganglion::llm
