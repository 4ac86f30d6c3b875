// libFuzzer target for the exact tokenizer (src/llm/tokenizer/). Any bytes must:
//  - count as many tokens as they encode to, never more than their bytes;
//  - decode back to themselves when they are valid UTF-8 (to U+FFFD per bad byte otherwise:
//    then the round trip is checked on the repaired text);
//  - merge each piece the same way with the heap (long pieces) and the linear rescans.
// The first byte picks the encoding. Run by scripts/fuzz.sh; a failed check traps.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "llm/tokenizer/bpe.h"
#include "llm/tokenizer/encoding.h"

namespace {

using namespace ganglion::llm::tokenizer;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Encoding* enc = encodingNamed(data[0] & 1 ? "cl100k_base" : "o200k_base");
  CHECK(enc != nullptr);
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::vector<uint32_t> ids = enc->encode(text);
  CHECK(enc->count(text) == ids.size());
  CHECK(ids.size() <= text.size());
  const std::string back = enc->decode(ids);
  if (back != text) {
    // Only a text that was not valid UTF-8 may come back changed: then it is the repaired
    // text, which must be valid and encode to the same ids.
    CHECK(enc->encode(back) == ids);
  }
  std::vector<uint32_t> linear, heap;
  enc->split(back, [&](std::string_view piece) {
    CHECK(!piece.empty());
    if (piece.size() > 512) return;  // the linear merge is quadratic
    mergeLinear(enc->vocab(), piece, linear);
    mergeHeap(enc->vocab(), piece, heap);
    CHECK(linear == heap);
  });
  return 0;
}
