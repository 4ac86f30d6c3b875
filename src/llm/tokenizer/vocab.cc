#include "llm/tokenizer/vocab.h"

#include <cstring>

namespace ganglion::llm::tokenizer {
namespace {

uint64_t mix(uint64_t h) {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

/// Tokens are 1..255 bytes, most of them under 8: word-at-a-time, no per-byte loop.
uint64_t hashBytes(std::string_view s) {
  uint64_t h = s.size() * 0x9e3779b97f4a7c15ull;
  const char* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix(h ^ w) * 0xbf58476d1ce4e5b9ull;
  }
  if (n) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
  }
  return mix(h);
}

uint32_t readU32(std::string_view s, size_t at) {
  return uint32_t(uint8_t(s[at])) | uint32_t(uint8_t(s[at + 1])) << 8 | uint32_t(uint8_t(s[at + 2])) << 16 |
         uint32_t(uint8_t(s[at + 3])) << 24;
}

}  // namespace

std::optional<Vocab> Vocab::load(std::string_view blob, std::string& why) {
  if (blob.size() < 12 || blob.substr(0, 4) != "GBPE" || readU32(blob, 4) != 1) {
    why = "not a version 1 .bpe vocabulary";
    return std::nullopt;
  }
  if (blob.size() >= (1u << 24)) {
    why = "vocabulary larger than 16 MiB";
    return std::nullopt;
  }
  const uint32_t count = readU32(blob, 8);
  Vocab v;
  v.blob_ = blob;
  v.tokens_.reserve(count);
  size_t at = 12;
  for (uint32_t r = 0; r < count; ++r) {
    if (at >= blob.size()) break;
    const size_t len = uint8_t(blob[at++]);
    if (len == 0 || at + len > blob.size()) break;
    v.tokens_.push_back(uint32_t(at) << 8 | uint32_t(len));
    v.max_token_bytes_ = std::max(v.max_token_bytes_, len);
    at += len;
  }
  if (v.tokens_.size() != count || at != blob.size()) {
    why = "truncated .bpe vocabulary";
    return std::nullopt;
  }
  uint32_t cap = 1;
  while (cap < count * 2u) cap <<= 1;
  v.slots_.assign(cap, 0);
  v.mask_ = cap - 1;
  for (uint32_t r = 0; r < count; ++r) {
    const std::string_view key = v.bytes(r);
    size_t i = hashBytes(key) & v.mask_;
    for (; v.slots_[i]; i = (i + 1) & v.mask_) {
      if (v.bytes(v.slots_[i] - 1) == key) {
        why = "a token appears twice in the .bpe vocabulary";
        return std::nullopt;
      }
    }
    v.slots_[i] = r + 1;
  }
  for (int b = 0; b < 256; ++b) {
    const char c = char(b);
    if (v.rank(std::string_view(&c, 1)) == kNoRank) {
      why = "a single byte has no rank in the .bpe vocabulary";
      return std::nullopt;
    }
  }
  return v;
}

uint32_t Vocab::rank(std::string_view bytes) const {
  if (bytes.empty() || bytes.size() > max_token_bytes_) return kNoRank;
  for (size_t i = hashBytes(bytes) & mask_;; i = (i + 1) & mask_) {
    const uint32_t slot = slots_[i];
    if (!slot) return kNoRank;
    if (this->bytes(slot - 1) == bytes) return slot - 1;
  }
}

}  // namespace ganglion::llm::tokenizer
