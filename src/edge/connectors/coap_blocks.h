// Bodies a CoAP device sends in pieces (RFC 7959 Block1: each request carries block NUM of
// 2^(SZX+4) bytes and whether more follow), put together per sender and request so that the
// connector decodes a whole body once. Separate from libcoap: libcoap 4.3.1's own assembly
// sizes its buffer from the sender's Size1 or block number (up to gigabytes) before checking
// anything, so the endpoint reads the Block1 option itself and keeps its own bounds.
//
// Threads: one assembler per CoAP connector, used on its thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ganglion::edge {

/// Bodies in progress at most, their bytes together at most, and how long one waits for its
/// next block.
inline constexpr size_t kCoapMaxPendingBodies = 256;
/// Bodies in progress from one sender (one address, whatever its ports) at most: one sender
/// cannot take every slot from the others.
inline constexpr size_t kCoapMaxBodiesPerSender = 16;
inline constexpr size_t kCoapMaxPendingBytes = size_t{32} << 20;
inline constexpr int64_t kCoapBlockIdleMs = 60'000;

class CoapBlockAssembler {
 public:
  /// One Block1 request: its block and what came with it.
  struct Block {
    uint32_t num = 0;
    bool more = false;
    unsigned szx = 0;               ///< 0..6: blocks of 16..1024 bytes
    std::string_view piece;         ///< the request's payload
    unsigned content_format = 0;    ///< the request's (or the fallback's)
    std::optional<uint64_t> size1;  ///< the sender's estimate of the whole body
  };
  enum class Outcome {
    kContinue,    ///< kept; ask for the next block (2.31)
    kComplete,    ///< the last block: `body` holds the whole
    kTooLarge,    ///< over max_body (4.13); forgotten
    kIncomplete,  ///< a block out of order, or the body is not known (4.08); forgotten
    kBusy,        ///< too many bodies or bytes in progress (5.03)
  };
  struct Result {
    Outcome outcome;
    std::string body;  ///< kComplete
    std::string why;   ///< refusals
  };

  /// Takes `block` of the body `key` names (`sender`, the sender's address, then its port,
  /// Request-Tag and target). Bodies idle longer than kCoapBlockIdleMs are forgotten first.
  Result add(const std::string& sender, const std::string& key, const Block& block, uint64_t max_body,
             int64_t now_ms);

  size_t pending() const { return bodies_.size(); }
  size_t pendingBytes() const { return bytes_; }

 private:
  struct Body {
    std::string data;
    unsigned content_format = 0;
    int64_t touched_ms = 0;
    std::string sender;
  };
  void forget(std::unordered_map<std::string, Body>::iterator it);
  void expire(int64_t now_ms);

  std::unordered_map<std::string, Body> bodies_;
  std::unordered_map<std::string, size_t> per_sender_;  ///< bodies in progress by sender
  size_t bytes_ = 0;
  int64_t next_expiry_ms_ = 0;
};

}  // namespace ganglion::edge
