#include "llm/tokenizer/encoding.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <mutex>
#include <stdexcept>

#include "llm/tokenizer/bpe.h"
#include "llm/tokenizer/data.h"

namespace ganglion::llm::tokenizer {
namespace {

// tiktoken's patterns (tiktoken_ext/openai_public.py) with one change: `\s` spelled as the
// Unicode White_Space set that Rust's regex crate, and so tiktoken, uses. PCRE2's own `\s` adds
// U+180E; JavaScript's adds U+FEFF and lacks U+0085 (docs/design/tokenizer.md §3).
#define WS               \
  "\\t\\n\\x{0B}\\f\\r " \
  "\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
constexpr const char* kCl100kPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS
    "\\p{L}\\p{N}]+[\\r\\n]*"
    "|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+";
constexpr const char* kO200kPattern =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+";
#undef WS

/// `text` with each invalid UTF-8 sequence replaced by U+FFFD, one per maximal subpart (the
/// longest prefix of a valid sequence, else one byte), as Unicode recommends and browsers and
/// Python do: no overlong forms, surrogates or code points past U+10FFFF.
std::string repairUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range
    if (c < 0x80)
      len = 1;
    else if (c >= 0xc2 && c <= 0xdf)
      len = 2;
    else if (c >= 0xe0 && c <= 0xef)
      len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
      len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    size_t valid = len ? 1 : 0;  // bytes of the sequence that are right so far
    while (valid && valid < len && i + valid < n) {
      const unsigned char b = s[i + valid];
      if (valid == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) break;
      ++valid;
    }
    if (valid == len && len) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out.append("\xef\xbf\xbd");
      i += valid ? valid : 1;
    }
  }
  return out;
}

}  // namespace

struct Encoding::Pattern {
  pcre2_code* code = nullptr;
  ~Pattern() { pcre2_code_free(code); }
};

Encoding::Encoding(std::string name, Vocab vocab, const char* pattern)
    : name_(std::move(name)), vocab_(std::move(vocab)), pattern_(std::make_unique<Pattern>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pattern_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!pattern_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw std::runtime_error(name_ + " pattern: " + reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(pattern_->code, PCRE2_JIT_COMPLETE);  // without JIT (not built in): interpreted
}

Encoding::~Encoding() = default;

void Encoding::splitInto(std::string_view text, std::string& repaired, bool (*fn)(void*, std::string_view),
                         void* ctx) const {
  if (text.empty()) return;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(pattern_->code, nullptr), &pcre2_match_data_free);
  if (!match) throw std::bad_alloc();
  auto subject = [&] { return reinterpret_cast<PCRE2_SPTR>(text.data()); };
  // The first match checks the whole text's UTF-8 once; later ones skip the check.
  int rc = pcre2_match(pattern_->code, subject(), text.size(), 0, 0, match.get(), nullptr);
  if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) {
    repaired = repairUtf8(text);
    text = repaired;
    rc = pcre2_match(pattern_->code, subject(), text.size(), 0, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
  }
  size_t at = 0;
  for (;;) {
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
    if (ov[1] <= at && ov[0] == ov[1]) break;  // the patterns never match empty; never loop
    if (!fn(ctx, text.substr(ov[0], ov[1] - ov[0]))) return;
    at = ov[1];
    if (at >= text.size()) return;
    rc = pcre2_match(pattern_->code, subject(), text.size(), at, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
  }
  // Unreachable with these patterns (every code point matches some branch), unless PCRE2 ran
  // out of its JIT stack: the rest counts a token per byte, which stays an upper bound.
  for (; at < text.size(); ++at)
    if (!fn(ctx, text.substr(at, 1))) return;
}

uint64_t Encoding::count(std::string_view text, CountBudget* budget) const {
  uint64_t tokens = 0;
  if (!budget) {
    split(text, [&](std::string_view piece) { tokens += countPiece(vocab_, piece); });
    return tokens;
  }
  if (budget->stopped) return 0;
  struct State {
    const Vocab& vocab;
    CountBudget& budget;
    uint64_t& tokens;
    size_t pieces = 0;
  } state{vocab_, *budget, tokens};
  std::string repaired;
  splitInto(
      text, repaired,
      [](void* ctx, std::string_view piece) {
        auto& s = *static_cast<State*>(ctx);
        const bool cancelled =
            s.budget.cancel && (++s.pieces & 255) == 0 && s.budget.cancel->load(std::memory_order_relaxed);
        if (piece.size() > s.budget.max_piece || cancelled) {
          s.budget.stopped = true;
          return false;
        }
        s.tokens += countPiece(s.vocab, piece);
        return true;
      },
      &state);
  return tokens;
}

std::vector<uint32_t> Encoding::encode(std::string_view text) const {
  std::vector<uint32_t> out;
  split(text, [&](std::string_view piece) { mergePiece(vocab_, piece, out); });
  return out;
}

std::string Encoding::decode(std::span<const uint32_t> ids) const {
  std::string out;
  for (uint32_t id : ids)
    if (id < vocab_.size()) out.append(vocab_.bytes(id));
  return out;
}

namespace {

struct Slot {
  const char* name;
  const char* pattern;
  std::once_flag once;
  std::unique_ptr<Encoding> encoding;
  std::atomic<const Encoding*> ready{nullptr};  ///< set once built: read without the once_flag
};
std::array<Slot, 2> g_slots{{{"o200k_base", kO200kPattern, {}, nullptr, {nullptr}},
                             {"cl100k_base", kCl100kPattern, {}, nullptr, {nullptr}}}};

}  // namespace

const Encoding* encodingNamed(std::string_view name) {
  for (Slot& slot : g_slots) {
    if (name != slot.name) continue;
    std::call_once(slot.once, [&] {
      std::string why;
      auto vocab = Vocab::load(embeddedVocab(slot.name), why);
      if (vocab) slot.encoding = std::make_unique<Encoding>(slot.name, std::move(*vocab), slot.pattern);
      slot.ready.store(slot.encoding.get(), std::memory_order_release);
    });
    return slot.encoding.get();
  }
  return nullptr;
}

const Encoding* loadedEncoding(std::string_view name) {
  for (Slot& slot : g_slots)
    if (name == slot.name) return slot.ready.load(std::memory_order_acquire);
  return nullptr;
}

std::string_view encodingForModel(std::string_view model) {
  if (model.starts_with("ft:")) model.remove_prefix(3);
  // Longest prefixes first: gpt-4o, gpt-4.1 and gpt-4.5 before gpt-4.
  static constexpr std::pair<std::string_view, std::string_view> kPrefixes[] = {
      {"gpt-4o", "o200k_base"},
      {"gpt-4.1", "o200k_base"},
      {"gpt-4.5", "o200k_base"},
      {"chatgpt-4o", "o200k_base"},
      {"gpt-5", "o200k_base"},
      {"o1", "o200k_base"},
      {"o3", "o200k_base"},
      {"o4-mini", "o200k_base"},
      {"gpt-4", "cl100k_base"},
      {"gpt-3.5-turbo", "cl100k_base"},
      {"gpt-35-turbo", "cl100k_base"},
      {"text-embedding-3-", "cl100k_base"},
      {"text-embedding-ada-002", "cl100k_base"},
      {"davinci-002", "cl100k_base"},
      {"babbage-002", "cl100k_base"},
  };
  for (const auto& [prefix, encoding] : kPrefixes) {
    if (!model.starts_with(prefix)) continue;
    // "o1", "o3": the whole name or a dash after it (not "o1x"); others are full words already.
    if ((prefix == "o1" || prefix == "o3") && model.size() > 2 && model[2] != '-') continue;
    return encoding;
  }
  return {};
}

}  // namespace ganglion::llm::tokenizer
