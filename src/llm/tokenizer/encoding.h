// OpenAI's BPE encodings (o200k_base, cl100k_base), counting exactly what the provider will
// bill: pieces split by tiktoken's pattern, then merged by rank. Built at first use (any thread,
// once); read-only afterwards, so every worker shares one.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "llm/tokenizer/vocab.h"

namespace ganglion::llm::tokenizer {

/// Bounds on the work of one count, checked between pieces: a count that meets them stops,
/// and its result is partial (`stopped`).
struct CountBudget {
  size_t max_piece = SIZE_MAX;  ///< a longer piece stops the count (merging it costs O(n log n))
  const std::atomic<bool>* cancel = nullptr;  ///< set by another thread: stop
  bool stopped = false;                       ///< out
};

class Encoding {
 public:
  /// `pattern`: tiktoken's pre-tokenizer, in PCRE2 syntax. Throws std::runtime_error when it
  /// does not compile (a build defect, caught by the unit tests).
  Encoding(std::string name, Vocab vocab, const char* pattern);
  ~Encoding();
  Encoding(const Encoding&) = delete;
  Encoding& operator=(const Encoding&) = delete;

  std::string_view name() const { return name_; }
  const Vocab& vocab() const { return vocab_; }

  /// Tokens of `text` with tiktoken's encode_ordinary semantics: special-token text such as
  /// "<|endoftext|>" is plain text, as in a prompt. Invalid UTF-8 counts as U+FFFD per bad byte.
  /// Never more than text.size(). Cost: about 30 ms a MB of prose; a single word of megabytes
  /// merges in O(n log n), about 0.5 s a MB.
  uint64_t count(std::string_view text, CountBudget* budget = nullptr) const;
  std::vector<uint32_t> encode(std::string_view text) const;
  /// The bytes of `ids`; ids outside the vocabulary are skipped.
  std::string decode(std::span<const uint32_t> ids) const;

  /// Calls `piece` for each pre-tokenized piece of `text` (valid UTF-8 after replacement).
  template <class F>
  void split(std::string_view text, F&& piece) const {
    using Fn = std::remove_reference_t<F>;
    std::string repaired;
    splitInto(
        text, repaired,
        [](void* f, std::string_view p) {
          (*static_cast<Fn*>(f))(p);
          return true;
        },
        const_cast<void*>(static_cast<const void*>(&piece)));
  }

 private:
  /// Calls `fn` per piece until it returns false.
  void splitInto(std::string_view text, std::string& repaired, bool (*fn)(void*, std::string_view),
                 void* ctx) const;

  std::string name_;
  Vocab vocab_;
  struct Pattern;
  std::unique_ptr<Pattern> pattern_;
};

/// "o200k_base" or "cl100k_base", built from the embedded vocabulary at the first call (about
/// 15 ms and 3 MB for o200k); nullptr for other names and in builds without vocabularies.
/// Any thread.
const Encoding* encodingNamed(std::string_view name);

/// The named encoding if it was built already, else nullptr (never builds it: a caller on an
/// event loop builds it on the compute pool with encodingNamed). Any thread.
const Encoding* loadedEncoding(std::string_view name);

/// The encoding OpenAI uses for `model` (a model id as OpenAI or Azure's catalogue spells it,
/// with a fine-tune's "ft:" prefix allowed): "o200k_base" for gpt-4o, gpt-4.1, gpt-4.5, gpt-5,
/// o1, o3, o4; "cl100k_base" for gpt-4, gpt-3.5 and the text-embedding models; "" otherwise.
std::string_view encodingForModel(std::string_view model);

}  // namespace ganglion::llm::tokenizer
