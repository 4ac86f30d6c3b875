#include "llm/tokenizer/tokens_command.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "llm/tokenizer/data.h"
#include "llm/tokenizer/encoding.h"

namespace ganglion::llm::tokenizer {
namespace {

void printResult(const Encoding& enc, std::string_view text, bool ids, std::FILE* out) {
  if (!ids) {
    std::fprintf(out, "%llu\n", static_cast<unsigned long long>(enc.count(text)));
    return;
  }
  const auto tokens = enc.encode(text);
  for (size_t i = 0; i < tokens.size(); ++i) std::fprintf(out, i ? ",%u" : "%u", tokens[i]);
  std::fputc('\n', out);
}

}  // namespace

int runTokensCommand(const TokensOptions& options, std::FILE* in, std::FILE* out, std::FILE* err) {
  std::string name = options.encoding;
  if (name.empty()) {
    name = std::string(encodingForModel(options.model));
    if (name.empty()) {
      std::fprintf(err, "no known OpenAI encoding for model '%s': name one with --encoding\n",
                   options.model.c_str());
      return 2;
    }
  }
  const Encoding* enc = encodingNamed(name);
  if (!enc) {
    std::fprintf(err, "unknown encoding '%s' (o200k_base or cl100k_base%s)\n", name.c_str(),
                 embeddedVocab("o200k_base").empty() ? "; this build has no vocabularies" : "");
    return 2;
  }
  auto finish = [&]() {
    if (std::ferror(in)) {
      std::fprintf(err, "cannot read the input\n");
      return 1;
    }
    if (std::fflush(out) != 0 || std::ferror(out)) {
      std::fprintf(err, "cannot write the output\n");
      return 1;
    }
    return 0;
  };
  std::string text;
  char buf[1 << 16];
  if (!options.batch) {
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) text.append(buf, n);
    if (!std::ferror(in)) printResult(*enc, text, options.ids, out);
    return finish();
  }
  for (;;) {
    unsigned char len_bytes[4];
    const size_t got = std::fread(len_bytes, 1, 4, in);
    if (got == 0) return finish();
    const uint32_t len = len_bytes[0] | len_bytes[1] << 8 | len_bytes[2] << 16 | uint32_t(len_bytes[3]) << 24;
    // Read in pieces: a record's declared length is not trusted with an allocation.
    text.clear();
    while (got == 4 && text.size() < len) {
      const size_t want = std::min<size_t>(sizeof buf, len - text.size());
      const size_t n = std::fread(buf, 1, want, in);
      if (n == 0) break;
      text.append(buf, n);
    }
    if (got != 4 || text.size() != len) {
      std::fprintf(err, "truncated batch record\n");
      return 2;
    }
    printResult(*enc, text, options.ids, out);
  }
}

}  // namespace ganglion::llm::tokenizer
