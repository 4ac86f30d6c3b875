#include "llm/tokenizer/bpe.h"

#include <algorithm>
#include <queue>

namespace ganglion::llm::tokenizer {

// Both strategies leave in `starts` the byte offset where each final token begins.

void mergeLinear(const Vocab& vocab, std::string_view piece, std::vector<uint32_t>& starts) {
  struct Part {
    uint32_t start;
    uint32_t rank;  ///< of this part joined with the next one
  };
  const size_t n = piece.size();
  Part parts[kHeapMergeFrom + 1];
  std::vector<Part> heap_parts;
  Part* p = parts;
  if (n + 1 > std::size(parts)) {
    heap_parts.resize(n + 1);
    p = heap_parts.data();
  }
  size_t count = n + 1;  // the last part is the end marker
  for (size_t i = 0; i < n; ++i) p[i] = {uint32_t(i), i + 1 < n ? vocab.rank(piece.substr(i, 2)) : kNoRank};
  p[n] = {uint32_t(n), kNoRank};
  auto joined = [&](size_t i) {  // rank of parts i and i+1 joined
    return i + 2 < count ? vocab.rank(piece.substr(p[i].start, p[i + 2].start - p[i].start)) : kNoRank;
  };
  for (;;) {
    uint32_t best = kNoRank;
    size_t at = 0;
    for (size_t i = 0; i + 1 < count; ++i)
      if (p[i].rank < best) best = p[i].rank, at = i;
    if (best == kNoRank) break;
    std::copy(p + at + 2, p + count, p + at + 1);
    --count;
    p[at].rank = joined(at);
    if (at > 0) p[at - 1].rank = joined(at - 1);
  }
  starts.clear();
  for (size_t i = 0; i + 1 < count; ++i) starts.push_back(p[i].start);
}

void mergeHeap(const Vocab& vocab, std::string_view piece, std::vector<uint32_t>& starts) {
  const uint32_t n = uint32_t(piece.size());
  // Parts as a linked list over byte offsets; a part's version changes when it grows, which
  // makes every heap entry naming it stale.
  std::vector<uint32_t> next(n), prev(n), version(n, 0);
  for (uint32_t i = 0; i < n; ++i) next[i] = i + 1, prev[i] = i - 1;
  struct Candidate {
    uint32_t rank, at, version_at, version_next;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : at > o.at; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](uint32_t i) {
    const uint32_t j = next[i];
    if (j >= n) return;
    const uint32_t end = next[j];
    if (end - i > vocab.maxTokenBytes()) return;
    if (uint32_t r = vocab.rank(piece.substr(i, end - i)); r != kNoRank)
      heap.push({r, i, version[i], version[j]});
  };
  for (uint32_t i = 0; i + 1 < n; ++i) consider(i);
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const uint32_t i = c.at, j = next[i];
    if (!alive[i] || j >= n || version[i] != c.version_at || version[j] != c.version_next) continue;
    alive[j] = false;
    next[i] = next[j];
    if (next[j] < n) prev[next[j]] = i;
    ++version[i];
    consider(i);
    if (prev[i] != UINT32_MAX) consider(prev[i]);
  }
  starts.clear();
  for (uint32_t i = 0; i < n; i = next[i]) starts.push_back(i);
}

namespace {

void merge(const Vocab& vocab, std::string_view piece, std::vector<uint32_t>& starts) {
  if (piece.size() < kHeapMergeFrom)
    mergeLinear(vocab, piece, starts);
  else
    mergeHeap(vocab, piece, starts);
}

thread_local std::vector<uint32_t> t_starts;

}  // namespace

void mergePiece(const Vocab& vocab, std::string_view piece, std::vector<uint32_t>& out) {
  if (uint32_t r = vocab.rank(piece); r != kNoRank) return out.push_back(r);
  merge(vocab, piece, t_starts);
  for (size_t k = 0; k < t_starts.size(); ++k) {
    const uint32_t end = k + 1 < t_starts.size() ? t_starts[k + 1] : uint32_t(piece.size());
    out.push_back(vocab.rank(piece.substr(t_starts[k], end - t_starts[k])));
  }
}

size_t countPiece(const Vocab& vocab, std::string_view piece) {
  if (piece.size() == 1 || vocab.rank(piece) != kNoRank) return 1;
  merge(vocab, piece, t_starts);
  return t_starts.size();
}

}  // namespace ganglion::llm::tokenizer
