#include "edge/connectors/coap_blocks.h"

#include <fmt/format.h>

namespace ganglion::edge {

void CoapBlockAssembler::forget(std::unordered_map<std::string, Body>::iterator it) {
  bytes_ -= it->second.data.size();
  if (auto s = per_sender_.find(it->second.sender); s != per_sender_.end() && --s->second == 0)
    per_sender_.erase(s);
  bodies_.erase(it);
}

void CoapBlockAssembler::expire(int64_t now_ms) {
  if (now_ms < next_expiry_ms_ || bodies_.empty()) return;
  next_expiry_ms_ = now_ms + 1000;  // a scan of at most kCoapMaxPendingBodies, once a second
  for (auto it = bodies_.begin(); it != bodies_.end();) {
    auto next = std::next(it);
    if (now_ms - it->second.touched_ms > kCoapBlockIdleMs) forget(it);
    it = next;
  }
}

CoapBlockAssembler::Result CoapBlockAssembler::add(const std::string& sender, const std::string& key,
                                                   const Block& block, uint64_t max_body, int64_t now_ms) {
  expire(now_ms);
  const uint64_t size = uint64_t{16} << block.szx;
  const uint64_t offset = uint64_t{block.num} * size;
  auto it = bodies_.find(key);
  if (block.num == 0) {
    if (it != bodies_.end()) forget(it);  // the sender starts over
    it = bodies_.end();
    if (block.size1 && *block.size1 > max_body)
      return {Outcome::kTooLarge, {}, fmt::format("the body is larger than {} bytes", max_body)};
    if (!block.more) {
      if (block.piece.size() > max_body)
        return {Outcome::kTooLarge, {}, fmt::format("the body is larger than {} bytes", max_body)};
      return {Outcome::kComplete, std::string(block.piece), {}};
    }
    if (bodies_.size() >= kCoapMaxPendingBodies)
      return {Outcome::kBusy, {}, "too many bodies are arriving in blocks; try again"};
    size_t& mine = per_sender_[sender];
    if (mine >= kCoapMaxBodiesPerSender)
      return {Outcome::kBusy,
              {},
              fmt::format("this sender has {} bodies arriving in blocks already; finish one first",
                          kCoapMaxBodiesPerSender)};
    ++mine;
    it = bodies_.emplace(key, Body{{}, block.content_format, now_ms, sender}).first;
  } else if (it == bodies_.end()) {
    return {Outcome::kIncomplete,
            {},
            fmt::format("block {} came without the blocks before it (or after the body waited over {} s)",
                        block.num, kCoapBlockIdleMs / 1000)};
  }
  Body& body = it->second;
  if (offset != body.data.size()) {
    forget(it);
    return {
        Outcome::kIncomplete,
        {},
        fmt::format("block {} starts at byte {}, but {} bytes have come; send the body again from block 0",
                    block.num, offset, body.data.size())};
  }
  if (block.content_format != body.content_format) {
    forget(it);
    return {Outcome::kIncomplete, {}, "the Content-Format changed between blocks; send the body again"};
  }
  if (body.data.size() + block.piece.size() > max_body) {
    forget(it);
    return {Outcome::kTooLarge, {}, fmt::format("the body is larger than {} bytes", max_body)};
  }
  if (bytes_ + block.piece.size() > kCoapMaxPendingBytes) {
    forget(it);
    return {Outcome::kBusy, {}, "too many bytes are arriving in blocks; try again"};
  }
  body.data.append(block.piece);
  bytes_ += block.piece.size();
  body.touched_ms = now_ms;
  if (block.more) return {Outcome::kContinue, {}, {}};
  std::string whole = std::move(body.data);
  bytes_ -= whole.size();  // forget() counts what is left in the entry: nothing now
  forget(it);
  return {Outcome::kComplete, std::move(whole), {}};
}

}  // namespace ganglion::edge
