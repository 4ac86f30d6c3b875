// Prototype: exact tiktoken-compatible token counting in C++ with PCRE2 (UTF, JIT) + heap BPE.
// build: g++ -O2 -std=c++20 -I../deb/root/usr/include tok.cc ../deb/root/usr/lib/x86_64-linux-gnu/libpcre2-8.a -o tok
// usage: tok <enc> <file.tiktoken> <cases.bin> > ids.txt    (cases.bin: u32le len + utf8 bytes, repeated)
//        tok <enc> <file.tiktoken> --bench <text file> <repeat>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <chrono>
#include <cstdlib>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <queue>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

// Unicode White_Space, as Rust's regex crate defines \s (tiktoken); not JS's \s (adds U+FEFF, lacks U+0085).
#define WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char* kCl100k =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
    "|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+";
static const char* kO200k =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+";

#ifdef FLAT
// Flat open-addressing index: slots hold rank+1 (0 = empty); keys are read from the blob.
struct FlatIndex {
  const std::string* blob = nullptr;
  std::vector<uint32_t> off, slots;  // off[r]..off[r+1] = bytes of rank r
  uint32_t mask = 0;
  static uint64_t hash(std::string_view s) {  // FNV-1a 64 over up to 128 bytes, then mix
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h ^ (h >> 29);
  }
  size_t size() const { return off.empty() ? 0 : off.size() - 1; }
  void build() {
    size_t n = size(), cap = 1; while (cap < n * 2) cap <<= 1;
    slots.assign(cap, 0); mask = cap - 1;
    for (uint32_t r = 0; r < n; r++) {
      size_t i = hash(key(r)) & mask; while (slots[i]) i = (i + 1) & mask; slots[i] = r + 1;
    }
  }
  std::string_view key(uint32_t r) const { return std::string_view(*blob).substr(off[r], off[r + 1] - off[r]); }
  uint32_t find(std::string_view s) const {
    for (size_t i = hash(s) & mask;; i = (i + 1) & mask) {
      uint32_t v = slots[i]; if (!v) return UINT32_MAX; if (key(v - 1) == s) return v - 1;
    }
  }
};
struct Vocab { std::string blob; FlatIndex rank; };
#else
struct Vocab {
  std::string blob;                                     // all token bytes
  std::unordered_map<std::string_view, uint32_t> rank;  // views into blob
};
#endif

static int b64v(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : c == '/' ? 63 : -1;
}
static Vocab load(const char* path) {
  std::ifstream f(path);
  std::string line;
  std::vector<std::pair<size_t, size_t>> spans;
  Vocab v;
  while (std::getline(f, line)) {
    size_t sp = line.find(' ');
    size_t start = v.blob.size();
    uint32_t acc = 0; int bits = 0;
    for (size_t i = 0; i < sp; i++) {
      int d = b64v(line[i]); if (d < 0) break;
      acc = (acc << 6) | d; bits += 6;
      if (bits >= 8) { bits -= 8; v.blob.push_back(char((acc >> bits) & 0xff)); }
    }
    if (std::stoul(line.substr(sp + 1)) != spans.size()) { fprintf(stderr, "ranks not dense\n"); exit(2); }
    spans.emplace_back(start, v.blob.size() - start);
  }
#ifdef FLAT
  for (auto& s : spans) v.rank.off.push_back(s.first);
  v.rank.off.push_back(v.blob.size());
  return v;
#else
  v.rank.reserve(spans.size() * 2);
  for (uint32_t r = 0; r < spans.size(); r++) v.rank.emplace(std::string_view(v.blob).substr(spans[r].first, spans[r].second), r);
  return v;
#endif
}

#ifdef FLAT
static inline uint32_t lookup(const Vocab& v, std::string_view s) { return v.rank.find(s); }
#else
static inline uint32_t lookup(const Vocab& v, std::string_view s) {
  auto it = v.rank.find(s);
  return it == v.rank.end() ? UINT32_MAX : it->second;
}
#endif

// Byte-pair merge with tiktoken's semantics: merge the lowest-ranked adjacent pair, leftmost first.
// Short pieces: linear rescans (tiktoken's own loop). Long pieces: min-heap over a linked list.
static void bpe(const Vocab& v, std::string_view p, std::vector<uint32_t>& out) {
  if (uint32_t r = lookup(v, p); r != UINT32_MAX) { out.push_back(r); return; }
  const size_t n = p.size();
  if (n < 128) {
    struct Part { uint32_t start, rank; };
    std::vector<Part> parts; parts.reserve(n + 1);
    for (size_t i = 0; i < n; i++) parts.push_back({uint32_t(i), i + 1 < n ? lookup(v, p.substr(i, 2)) : UINT32_MAX});
    parts.push_back({uint32_t(n), UINT32_MAX});
    auto pair_rank = [&](size_t i) {  // rank of parts[i] ++ parts[i+1]
      return i + 2 < parts.size() ? lookup(v, p.substr(parts[i].start, parts[i + 2].start - parts[i].start)) : UINT32_MAX;
    };
    for (;;) {
      uint32_t best = UINT32_MAX; size_t bi = 0;
      for (size_t i = 0; i + 1 < parts.size(); i++) if (parts[i].rank < best) { best = parts[i].rank; bi = i; }
      if (best == UINT32_MAX) break;
      parts.erase(parts.begin() + bi + 1);
      parts[bi].rank = pair_rank(bi);
      if (bi > 0) parts[bi - 1].rank = pair_rank(bi - 1);
    }
    for (size_t i = 0; i + 1 < parts.size(); i++) out.push_back(lookup(v, p.substr(parts[i].start, parts[i + 1].start - parts[i].start)));
    return;
  }
  std::vector<uint32_t> next(n), prev(n), ver(n, 0);
  std::vector<char> alive(n, 1);
  for (size_t i = 0; i < n; i++) { next[i] = i + 1; prev[i] = uint32_t(i) - 1; }
  struct Cand { uint32_t rank, pos, vi, vj; bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; } };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](uint32_t i) {
    uint32_t j = next[i]; if (j >= n) return;
    uint32_t r = lookup(v, p.substr(i, next[j] - i));
    if (r != UINT32_MAX) heap.push({r, i, ver[i], ver[j]});
  };
  for (uint32_t i = 0; i + 1 < n; i++) consider(i);
  while (!heap.empty()) {
    Cand c = heap.top(); heap.pop();
    uint32_t i = c.pos, j = next[i];
    if (!alive[i] || j >= n || ver[i] != c.vi || ver[j] != c.vj) continue;
    alive[j] = 0; next[i] = next[j]; if (next[j] < n) prev[next[j]] = i;
    ver[i]++;
    consider(i);
    if (prev[i] != UINT32_MAX) consider(prev[i]);
  }
  for (uint32_t i = 0; i < n; i = next[i]) out.push_back(lookup(v, p.substr(i, next[i] - i)));
}

struct Splitter {
  pcre2_code* re; pcre2_match_data* md;
  explicit Splitter(const char* pat) {
    int err; PCRE2_SIZE off;
    re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!re) { PCRE2_UCHAR buf[256]; pcre2_get_error_message(err, buf, sizeof buf); fprintf(stderr, "pcre2: %s at %zu\n", buf, off); exit(2); }
    if (pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0) fprintf(stderr, "no JIT\n");
    md = pcre2_match_data_create_from_pattern(re, nullptr);
  }
  template <class F> void each(std::string_view s, F&& f) {
    size_t pos = 0;
    while (pos < s.size()) {
      int rc = pcre2_match(re, (PCRE2_SPTR)s.data(), s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc < 0) break;  // the pattern matches every code point; only reached at end
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      f(s.substr(ov[0], ov[1] - ov[0]));
      pos = ov[1];
    }
  }
};

int main(int argc, char** argv) {
  if (argc < 4) { fprintf(stderr, "usage\n"); return 2; }
  auto t0 = std::chrono::steady_clock::now();
  Vocab v = load(argv[2]);
#ifdef FLAT
  v.rank.blob = &v.blob; v.rank.build();
#endif
  auto t1 = std::chrono::steady_clock::now();
  Splitter sp(std::string_view(argv[1]) == "o200k_base" ? kO200k : kCl100k);
  fprintf(stderr, "load %zu ranks in %.0f ms\n", v.rank.size(), std::chrono::duration<double, std::milli>(t1 - t0).count());
  std::vector<uint32_t> ids;
  if (std::string_view(argv[3]) == "--bench") {
    std::ifstream f(argv[4]); std::stringstream ss; ss << f.rdbuf(); std::string text = ss.str();
    int reps = atoi(argv[5]); size_t total = 0;
    auto b0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; r++) { ids.clear(); if (getenv("SPLIT_ONLY")) sp.each(text, [&](std::string_view piece) { ids.push_back(piece.size()); }); else sp.each(text, [&](std::string_view piece) { bpe(v, piece, ids); }); total += ids.size(); }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - b0).count();
    printf("%zu bytes x %d: %zu tokens/rep, %.1f MB/s\n", text.size(), reps, ids.size(), text.size() * reps / s / 1e6);
    return 0;
  }
  std::ifstream f(argv[3], std::ios::binary);
  uint32_t len;
  while (f.read((char*)&len, 4)) {
    std::string s(len, '\0'); f.read(s.data(), len);
    ids.clear();
    sp.each(s, [&](std::string_view piece) { bpe(v, piece, ids); });
    for (size_t i = 0; i < ids.size(); i++) printf(i ? ",%u" : "%u", ids[i]);
    printf("\n");
  }
}
