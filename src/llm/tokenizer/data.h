// The OpenAI vocabularies embedded in the binary at build time (CMake option GANGLION_TOKENIZER,
// data from scripts/tokenizer-data.sh). Read-only; any thread.
#pragma once

#include <string_view>

namespace ganglion::llm::tokenizer {

/// The .bpe blob of "o200k_base" or "cl100k_base"; empty for other names, or when the binary was
/// built without vocabularies (-DGANGLION_TOKENIZER=OFF).
std::string_view embeddedVocab(std::string_view encoding);

}  // namespace ganglion::llm::tokenizer
