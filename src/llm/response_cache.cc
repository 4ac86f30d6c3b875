#include "llm/response_cache.h"

#include <algorithm>
#include <boost/json.hpp>
#include <functional>
#include <vector>

namespace ganglion::llm {

namespace json = boost::json;

namespace {

void writeNormal(const json::value& v, std::string& out) {
  if (const auto* o = v.if_object()) {
    std::vector<const json::key_value_pair*> fields;
    for (const auto& kv : *o) fields.push_back(&kv);
    std::sort(fields.begin(), fields.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
    out += '{';
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i) out += ',';
      out += json::serialize(json::string_view(fields[i]->key()));
      out += ':';
      writeNormal(fields[i]->value(), out);
    }
    out += '}';
  } else if (const auto* a = v.if_array()) {
    out += '[';
    for (size_t i = 0; i < a->size(); ++i) {
      if (i) out += ',';
      writeNormal((*a)[i], out);
    }
    out += ']';
  } else {
    out += json::serialize(v);
  }
}

}  // namespace

std::string normalJson(const json::value& body) {
  std::string out;
  writeNormal(body, out);
  return out;
}

Sha256 cacheKey(std::string_view key_name, std::string_view endpoint, const json::object& body) {
  std::string material;
  material.append(key_name);
  material.push_back('\0');
  material.append(endpoint);
  material.push_back('\0');
  writeNormal(body, material);
  return sha256(material);
}

void ResponseCache::evict(std::unordered_map<Sha256, Slot, DigestHash>::iterator it) {
  bytes_ -= it->second.cost();
  lru_.erase(it->second.lru);
  slots_.erase(it);
}

std::optional<ResponseCache::Entry> ResponseCache::get(const Sha256& key) {
  std::lock_guard lock(mutex_);
  auto it = slots_.find(key);
  if (it == slots_.end()) return std::nullopt;
  if (it->second.expires <= now_()) {
    evict(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.entry;
}

void ResponseCache::put(const Sha256& key, Entry entry, std::chrono::milliseconds ttl, uint64_t max_bytes) {
  std::lock_guard lock(mutex_);
  if (auto old = slots_.find(key); old != slots_.end()) evict(old);
  Slot slot{std::move(entry), now_() + ttl, {}};
  if (slot.cost() > max_bytes) return;  // larger than the whole cache: not kept
  lru_.push_front(key);
  slot.lru = lru_.begin();
  bytes_ += slot.cost();
  slots_.emplace(key, std::move(slot));
  while (bytes_ > max_bytes && !lru_.empty()) evict(slots_.find(lru_.back()));
}

uint64_t ResponseCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

size_t ResponseCache::size() const {
  std::lock_guard lock(mutex_);
  return slots_.size();
}

}  // namespace ganglion::llm
