#include "llm/tokenizer/data.h"

// GANGLION_TOKENIZER_DATA is the folder holding the .bpe files, set by CMakeLists.txt after it
// checked their SHA-256; the assembler copies them into read-only data.
#ifdef GANGLION_TOKENIZER_DATA
asm(".section .rodata.ganglion_bpe,\"a\"\n"
    ".balign 16\n"
    ".globl ganglion_o200k_bpe\n.hidden ganglion_o200k_bpe\nganglion_o200k_bpe:\n"
    ".incbin \"" GANGLION_TOKENIZER_DATA
    "/o200k_base.bpe\"\n"
    ".globl ganglion_o200k_bpe_end\n.hidden ganglion_o200k_bpe_end\nganglion_o200k_bpe_end:\n"
    ".balign 16\n"
    ".globl ganglion_cl100k_bpe\n.hidden ganglion_cl100k_bpe\nganglion_cl100k_bpe:\n"
    ".incbin \"" GANGLION_TOKENIZER_DATA
    "/cl100k_base.bpe\"\n"
    ".globl ganglion_cl100k_bpe_end\n.hidden ganglion_cl100k_bpe_end\nganglion_cl100k_bpe_end:\n"
    ".previous\n");
extern "C" const char ganglion_o200k_bpe[], ganglion_o200k_bpe_end[];
extern "C" const char ganglion_cl100k_bpe[], ganglion_cl100k_bpe_end[];
#endif

namespace ganglion::llm::tokenizer {

std::string_view embeddedVocab(std::string_view encoding) {
#ifdef GANGLION_TOKENIZER_DATA
  if (encoding == "o200k_base")
    return {ganglion_o200k_bpe, size_t(ganglion_o200k_bpe_end - ganglion_o200k_bpe)};
  if (encoding == "cl100k_base")
    return {ganglion_cl100k_bpe, size_t(ganglion_cl100k_bpe_end - ganglion_cl100k_bpe)};
#endif
  (void)encoding;
  return {};
}

}  // namespace ganglion::llm::tokenizer
