// A byte-pair vocabulary: the bytes of each rank, and the rank of any byte string, over a .bpe
// blob embedded in the binary (format: scripts/tokenizer-convert.mjs). Built once by
// encodingNamed(); read-only afterwards, so any thread may use it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ganglion::llm::tokenizer {

inline constexpr uint32_t kNoRank = UINT32_MAX;

class Vocab {
 public:
  /// Indexes `blob` (which must outlive the Vocab); nullopt with `why` set when it is not a
  /// well-formed .bpe file: bad magic or version, a truncated or empty token, a repeated token,
  /// or a single byte without a rank.
  static std::optional<Vocab> load(std::string_view blob, std::string& why);

  uint32_t size() const { return static_cast<uint32_t>(tokens_.size()); }
  /// The rank of `bytes`, or kNoRank.
  uint32_t rank(std::string_view bytes) const;
  /// The bytes of `rank` (< size()).
  std::string_view bytes(uint32_t rank) const {
    const uint32_t t = tokens_[rank];
    return blob_.substr(t >> 8, t & 0xff);
  }
  size_t maxTokenBytes() const { return max_token_bytes_; }

 private:
  std::string_view blob_;
  std::vector<uint32_t> tokens_;  ///< per rank: offset in blob_ << 8 | length
  std::vector<uint32_t> slots_;   ///< open addressing: rank + 1, 0 when empty
  uint32_t mask_ = 0;
  size_t max_token_bytes_ = 0;
};

}  // namespace ganglion::llm::tokenizer
