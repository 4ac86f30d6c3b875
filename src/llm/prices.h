// Token prices and call costs. A built-in table covers the common models of each provider
// (list prices in USD per million tokens, as published in November 2026's price pages, see
// docs/configuration.md); a model target's `price:` in the config overrides it. Costs are exact
// integers in picodollars.
#pragma once

#include <optional>
#include <string_view>

#include "llm/llm_config.h"
#include "llm/usage.h"

namespace ganglion::llm {

using config::Picodollars;
using llm::Price;

/// The built-in price of `model` at a provider of `kind` (longest known model-id prefix, so
/// dated snapshots such as gpt-4o-mini-2024-07-18 find gpt-4o-mini), or nullopt.
std::optional<Price> builtinPrice(std::string_view kind, std::string_view model);

/// The most output tokens one answer of `model` may have (from the same table), or 0 when
/// unknown. What a call without max_tokens reserves per choice.
uint64_t builtinMaxOutput(std::string_view kind, std::string_view model);

/// The most prompt tokens `model` reads (same table), or 0 when unknown: the bound of a prompt
/// the provider completes on its side (a stored conversation, a file by id).
uint64_t builtinContextWindow(std::string_view kind, std::string_view model);

/// What a call with `usage` costs: uncached prompt at the input price, cache reads and writes
/// at theirs, completion (reasoning included) at the output price.
Picodollars costOf(const Price& price, const Usage& usage);

/// The most a call can cost before it runs: the whole prompt estimate at the input price and
/// `max_output` tokens at the output price. What budgets reserve.
Picodollars worstCaseCost(const Price& price, uint64_t prompt_tokens, uint64_t max_output);

/// "0.000150" for 150000000 picodollars: USD with up to 12 decimals, trailing zeros trimmed to 6.
std::string formatUsd(Picodollars amount);

}  // namespace ganglion::llm
