#include "llm/catalog.h"

#include <fmt/format.h>

#include "llm/prices.h"
#include "llm/providers/anthropic.h"
#include "llm/providers/bedrock.h"
#include "llm/providers/gemini.h"
#include "llm/providers/openai.h"
#include "llm/tokenizer/encoding.h"
#include "upstream/http_url.h"

namespace ganglion::llm {

std::unique_ptr<ProviderCodec> makeCodec(const llm::ProviderConfig& provider) {
  const auto& kind = provider.kind;
  if (kind == "anthropic") return std::make_unique<AnthropicCodec>(provider);
  if (kind == "gemini") return std::make_unique<GeminiCodec>(provider);
  if (kind == "bedrock") return std::make_unique<BedrockCodec>(provider);
  return std::make_unique<OpenAiCodec>(provider);  // openai, azure and the OpenAI-compatible presets
}

namespace {

/// The most output tokens one answer of target `t` may have when the client sets no limit.
uint64_t maxOutputOf(std::string_view kind, const llm::ModelTarget& t) {
  if (t.max_output) return t.max_output;
  if (kind == "anthropic") return AnthropicCodec::kDefaultMaxTokens;  // the codec always sends it
  return builtinMaxOutput(kind, t.model);
}

/// The encoding that counts `t`'s prompts exactly (built at the first count that needs it, on
/// the compute pool: a gateway that never counts never pays its 3 MB).
std::string_view encodingOf(std::string_view kind, const llm::ModelTarget& t) {
  std::string_view name;
  if (t.tokenizer == "o200k_base")
    name = "o200k_base";
  else if (t.tokenizer == "cl100k_base")
    name = "cl100k_base";
  else if (t.tokenizer.empty() && (kind == "openai" || kind == "azure"))
    name = tokenizer::encodingForModel(t.model);
  return name;
}

}  // namespace

Catalog::Catalog(const std::vector<ProviderConfig>& providers, const std::vector<ModelConfig>& models,
                 const std::vector<size_t>& provider_upstreams, LlmSettings settings)
    : settings_(std::move(settings)) {
  for (size_t i = 0; i < providers.size(); ++i) {
    const auto& p = providers[i];
    providers_.push_back(
        {&p, makeCodec(p), provider_upstreams[i], upstream::hostHeader(p.host, p.port, p.https)});
  }
  for (const auto& m : models) {
    CatalogModel cm;
    cm.config = &m;
    for (const auto& t : m.targets) {
      for (uint32_t p = 0; p < providers_.size(); ++p) {
        if (providers_[p].config->name != t.provider) continue;
        const std::string& kind = providers_[p].config->kind;
        CatalogTarget target{p,
                             t.model,
                             t.weight,
                             t.price ? t.price : builtinPrice(kind, t.model),
                             t.context_window ? t.context_window : m.context_window,
                             maxOutputOf(kind, t),
                             0,
                             {}};
        target.context_limit =
            target.context_window ? target.context_window : builtinContextWindow(kind, t.model);
        target.encoding = encodingOf(kind, t);
        cm.targets.push_back(std::move(target));
      }
    }
    by_name_.emplace(m.name, models_.size());
    models_.push_back(std::move(cm));
  }
}

}  // namespace ganglion::llm
