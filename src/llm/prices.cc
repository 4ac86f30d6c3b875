#include "llm/prices.h"

#include <fmt/format.h>

namespace ganglion::llm {

namespace {

struct Entry {
  std::string_view family;  ///< "openai" (also azure and compatible servers), "anthropic", "gemini"
  std::string_view prefix;
  double input, output, cached_input, cache_write;  ///< USD per million tokens (cache_write 0: input)
  uint32_t max_output;  ///< the most output tokens one answer may have (claude-3-7: with the 128k beta)
  uint32_t context;     ///< the most prompt tokens it reads (claude-sonnet-4: with the 1M beta)
};

// Published list prices (standard tier, prompts under any long-context threshold) and the
// models' output limits.
constexpr Entry kPrices[] = {
    {"openai", "gpt-5", 1.25, 10.00, 0.125, 0, 128000, 400000},
    {"openai", "gpt-5-mini", 0.25, 2.00, 0.025, 0, 128000, 400000},
    {"openai", "gpt-5-nano", 0.05, 0.40, 0.005, 0, 128000, 400000},
    {"openai", "gpt-4.1", 2.00, 8.00, 0.50, 0, 32768, 1047576},
    {"openai", "gpt-4.1-mini", 0.40, 1.60, 0.10, 0, 32768, 1047576},
    {"openai", "gpt-4.1-nano", 0.10, 0.40, 0.025, 0, 32768, 1047576},
    {"openai", "gpt-4o", 2.50, 10.00, 1.25, 0, 16384, 128000},
    {"openai", "gpt-4o-mini", 0.15, 0.60, 0.075, 0, 16384, 128000},
    {"openai", "o1", 15.00, 60.00, 7.50, 0, 100000, 200000},
    {"openai", "o1-mini", 1.10, 4.40, 0.55, 0, 65536, 128000},
    {"openai", "o3", 2.00, 8.00, 0.50, 0, 100000, 200000},
    {"openai", "o3-mini", 1.10, 4.40, 0.55, 0, 100000, 200000},
    {"openai", "o4-mini", 1.10, 4.40, 0.275, 0, 100000, 200000},
    {"openai", "text-embedding-3-small", 0.02, 0, 0.02, 0, 0, 8192},
    {"openai", "text-embedding-3-large", 0.13, 0, 0.13, 0, 0, 8192},
    {"openai", "text-embedding-ada-002", 0.10, 0, 0.10, 0, 0, 8192},
    {"anthropic", "claude-opus-4-5", 5.00, 25.00, 0.50, 6.25, 64000, 200000},
    {"anthropic", "claude-opus-4", 15.00, 75.00, 1.50, 18.75, 32000, 200000},
    {"anthropic", "claude-sonnet-4", 3.00, 15.00, 0.30, 3.75, 64000, 1000000},
    {"anthropic", "claude-haiku-4-5", 1.00, 5.00, 0.10, 1.25, 64000, 200000},
    {"anthropic", "claude-3-7-sonnet", 3.00, 15.00, 0.30, 3.75, 128000, 200000},
    {"anthropic", "claude-3-5-sonnet", 3.00, 15.00, 0.30, 3.75, 8192, 200000},
    {"anthropic", "claude-3-5-haiku", 0.80, 4.00, 0.08, 1.00, 8192, 200000},
    {"anthropic", "claude-3-haiku", 0.25, 1.25, 0.03, 0.30, 4096, 200000},
    {"gemini", "gemini-2.5-pro", 1.25, 10.00, 0.31, 0, 65536, 1048576},
    {"gemini", "gemini-2.5-flash", 0.30, 2.50, 0.075, 0, 65536, 1048576},
    {"gemini", "gemini-2.5-flash-lite", 0.10, 0.40, 0.025, 0, 65536, 1048576},
    {"gemini", "gemini-2.0-flash", 0.10, 0.40, 0.025, 0, 8192, 1048576},
    {"gemini", "gemini-2.0-flash-lite", 0.075, 0.30, 0.075, 0, 8192, 1048576},
};

std::string_view familyOf(std::string_view kind) {
  if (kind == "anthropic" || kind == "gemini") return kind;
  return "openai";  // openai, azure and the OpenAI-compatible presets
}

Picodollars pico(double usd_per_million) {
  // Table values have at most 3 decimals: rounding to whole picodollars per token is exact.
  return static_cast<Picodollars>(usd_per_million * 1'000'000.0 + 0.5);
}

/// a × b, saturating (a runaway token count must not wrap a budget around).
Picodollars mul(uint64_t a, Picodollars b) {
  if (b != 0 && a > UINT64_MAX / b) return UINT64_MAX;
  return a * b;
}

Picodollars add(Picodollars a, Picodollars b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

}  // namespace

namespace {

/// The table entry for `model` at a provider of `kind`: the longest matching model-id prefix.
const Entry* findEntry(std::string_view kind, std::string_view model) {
  std::string_view family = familyOf(kind);
  const Entry* best = nullptr;
  for (const auto& e : kPrices) {
    if (e.family != family || model.substr(0, e.prefix.size()) != e.prefix) continue;
    // The prefix must end at a boundary: "gpt-4o" matches "gpt-4o-2024-08-06", not "gpt-4o1".
    if (model.size() > e.prefix.size() && model[e.prefix.size()] != '-' && model[e.prefix.size()] != '@')
      continue;
    if (!best || e.prefix.size() > best->prefix.size()) best = &e;
  }
  return best;
}

}  // namespace

std::optional<Price> builtinPrice(std::string_view kind, std::string_view model) {
  const Entry* best = findEntry(kind, model);
  if (!best) return std::nullopt;
  return Price{pico(best->input), pico(best->output), pico(best->cached_input),
               pico(best->cache_write > 0 ? best->cache_write : best->input)};
}

uint64_t builtinMaxOutput(std::string_view kind, std::string_view model) {
  const Entry* e = findEntry(kind, model);
  return e ? e->max_output : 0;
}

uint64_t builtinContextWindow(std::string_view kind, std::string_view model) {
  const Entry* e = findEntry(kind, model);
  return e ? e->context : 0;
}

Picodollars costOf(const Price& price, const Usage& u) {
  uint64_t cached = std::min(u.cached, u.prompt);
  uint64_t written = std::min(u.cache_write, u.prompt - cached);
  uint64_t plain = u.prompt - cached - written;
  Picodollars total = mul(plain, price.input);
  total = add(total, mul(cached, price.cached_input));
  total = add(total, mul(written, price.cache_write));
  return add(total, mul(u.completion, price.output));
}

Picodollars worstCaseCost(const Price& price, uint64_t prompt_tokens, uint64_t max_output) {
  return add(mul(prompt_tokens, std::max(price.input, price.cache_write)), mul(max_output, price.output));
}

std::string formatUsd(Picodollars amount) {
  std::string out = fmt::format("{}.{:012}", amount / 1'000'000'000'000ull, amount % 1'000'000'000'000ull);
  while (out.size() > out.find('.') + 7 && out.back() == '0') out.pop_back();
  return out;
}

}  // namespace ganglion::llm
