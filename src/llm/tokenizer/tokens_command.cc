#include "llm/tokenizer/tokens_command.h"

#include <cstdint>
#include <vector>

#include "llm/tokenizer/data.h"
#include "llm/tokenizer/encoding.h"

namespace ganglion::llm::tokenizer {
namespace {

bool readExactly(std::FILE* in, char* to, size_t n) { return std::fread(to, 1, n, in) == n; }

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
  if (!options.batch) {
    std::string text;
    char buf[1 << 16];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) text.append(buf, n);
    printResult(*enc, text, options.ids, out);
    return 0;
  }
  for (;;) {
    unsigned char len_bytes[4];
    const size_t got = std::fread(len_bytes, 1, 4, in);
    if (got == 0) return 0;
    const uint32_t len = len_bytes[0] | len_bytes[1] << 8 | len_bytes[2] << 16 | uint32_t(len_bytes[3]) << 24;
    std::string text(len, '\0');
    if (got != 4 || !readExactly(in, text.data(), len)) {
      std::fprintf(err, "truncated batch record\n");
      return 2;
    }
    printResult(*enc, text, options.ids, out);
  }
}

}  // namespace ganglion::llm::tokenizer
