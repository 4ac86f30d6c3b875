// Hashing helpers over OpenSSL.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ganglion {

using Sha256 = std::array<uint8_t, 32>;

Sha256 sha256(std::string_view data);
/// SHA-1 as lower-case hex: what Redis names a Lua script by (EVALSHA); not for security.
std::string sha1Hex(std::string_view data);
/// Lower-case hex of `bytes` (a digest, random bytes).
std::string toHex(std::span<const uint8_t> bytes);

/// FNV-1a, 64-bit, then a splitmix64 avalanche: the hash of consistent hashing (the same
/// across runs, builds and machines, so every gateway puts a key on the same ring point).
uint64_t consistentHash(std::string_view key);

/// Hash for unordered containers keyed by a digest (its first 8 bytes are already uniform).
struct DigestHash {
  size_t operator()(const Sha256& d) const {
    size_t h;
    static_assert(sizeof h <= sizeof d);
    __builtin_memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

}  // namespace ganglion
