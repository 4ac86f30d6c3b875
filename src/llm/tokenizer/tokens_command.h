// `ganglion tokens`: what the gateway counts for a text, from the command line (checking a
// prompt's size, comparing with tiktoken). Main thread of the CLI; no config, no network.
#pragma once

#include <cstdio>
#include <string>

namespace ganglion::llm::tokenizer {

struct TokensOptions {
  std::string encoding;  ///< "o200k_base" or "cl100k_base"; or empty and `model` set
  std::string model;     ///< an OpenAI model id, mapped to its encoding
  bool ids = false;      ///< print the token ids, comma-separated, instead of the count
  bool batch = false;  ///< stdin holds records (u32 little-endian length, UTF-8 bytes); one output line each
};

/// Reads `in` to its end and writes the count (or ids) to `out`; errors to `err`. The exit
/// status: 0, or 2 for an unknown encoding or model, or a truncated batch record.
int runTokensCommand(const TokensOptions& options, std::FILE* in, std::FILE* out, std::FILE* err);

}  // namespace ganglion::llm::tokenizer
