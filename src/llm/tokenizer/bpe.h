// Byte-pair merging of one pre-tokenized piece, with tiktoken's rule: join the adjacent pair
// whose joined bytes have the lowest rank, the leftmost of equal ranks, until no adjacent pair
// is a token. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "llm/tokenizer/vocab.h"

namespace ganglion::llm::tokenizer {

/// Pieces from this many bytes on merge with a heap over a linked list (O(n log n)); shorter
/// ones with tiktoken's own linear rescans, which are faster there.
inline constexpr size_t kHeapMergeFrom = 128;

/// Appends the ranks of `piece` (not empty) to `out`.
void mergePiece(const Vocab& vocab, std::string_view piece, std::vector<uint32_t>& out);
/// How many tokens `piece` becomes (what mergePiece would append).
size_t countPiece(const Vocab& vocab, std::string_view piece);

/// The two strategies by name, for tests that hold them equal on any piece.
void mergeLinear(const Vocab& vocab, std::string_view piece, std::vector<uint32_t>& starts);
void mergeHeap(const Vocab& vocab, std::string_view piece, std::vector<uint32_t>& starts);

}  // namespace ganglion::llm::tokenizer
