#include "edge/connectors/coap_blocks.h"

#include <gtest/gtest.h>

#include <string>

namespace ganglion::edge {
namespace {

using Outcome = CoapBlockAssembler::Outcome;

CoapBlockAssembler::Block block(uint32_t num, bool more, std::string_view piece, unsigned szx = 0,
                                unsigned format = 50) {
  CoapBlockAssembler::Block b;
  b.num = num;
  b.more = more;
  b.szx = szx;
  b.piece = piece;
  b.content_format = format;
  return b;
}

const std::string k16(16, 'a');

/// "<prefix><n>" (GCC 12 warns of a bogus overflow at `"literal" + std::to_string(n)`).
std::string named(std::string prefix, size_t n) { return prefix.append(std::to_string(n)); }

TEST(CoapBlocks, PutsABodyTogetherInOrder) {
  CoapBlockAssembler a;
  EXPECT_EQ(a.add("s", "k", block(0, true, k16), 1000, 0).outcome, Outcome::kContinue);
  EXPECT_EQ(a.add("s", "k", block(1, true, std::string(16, 'b')), 1000, 1).outcome, Outcome::kContinue);
  EXPECT_EQ(a.pending(), 1u);
  EXPECT_EQ(a.pendingBytes(), 32u);
  auto done = a.add("s", "k", block(2, false, "cc"), 1000, 2);
  ASSERT_EQ(done.outcome, Outcome::kComplete);
  EXPECT_EQ(done.body, k16 + std::string(16, 'b') + "cc");
  EXPECT_EQ(a.pending(), 0u);
  EXPECT_EQ(a.pendingBytes(), 0u);
}

TEST(CoapBlocks, ASingleBlockIsWholeAtOnce) {
  CoapBlockAssembler a;
  auto done = a.add("s", "k", block(0, false, "{}"), 1000, 0);
  ASSERT_EQ(done.outcome, Outcome::kComplete);
  EXPECT_EQ(done.body, "{}");
  EXPECT_EQ(a.pending(), 0u);
}

TEST(CoapBlocks, BodiesOfDifferentKeysStayApart) {
  CoapBlockAssembler a;
  a.add("s", "x", block(0, true, std::string(16, 'x')), 1000, 0);
  a.add("s", "y", block(0, true, std::string(16, 'y')), 1000, 0);
  EXPECT_EQ(a.add("s", "y", block(1, false, "Y"), 1000, 0).body, std::string(16, 'y') + "Y");
  EXPECT_EQ(a.add("s", "x", block(1, false, "X"), 1000, 0).body, std::string(16, 'x') + "X");
}

TEST(CoapBlocks, ABlockWithoutItsPredecessorsIsIncomplete) {
  CoapBlockAssembler a;
  auto got = a.add("s", "k", block(3, false, "z"), 1000, 0);
  EXPECT_EQ(got.outcome, Outcome::kIncomplete);
  EXPECT_NE(got.why.find("block 3 came without the blocks before it"), std::string::npos) << got.why;
}

TEST(CoapBlocks, ABlockOutOfOrderForgetsTheBody) {
  CoapBlockAssembler a;
  a.add("s", "k", block(0, true, k16), 1000, 0);
  auto got = a.add("s", "k", block(2, true, k16), 1000, 0);
  EXPECT_EQ(got.outcome, Outcome::kIncomplete);
  EXPECT_NE(got.why.find("starts at byte 32, but 16 bytes have come"), std::string::npos) << got.why;
  EXPECT_EQ(a.pending(), 0u);
  EXPECT_EQ(a.add("s", "k", block(1, false, "z"), 1000, 0).outcome, Outcome::kIncomplete);
}

TEST(CoapBlocks, BlockZeroAgainStartsOver) {
  CoapBlockAssembler a;
  a.add("s", "k", block(0, true, std::string(16, 'o')), 1000, 0);
  a.add("s", "k", block(1, true, std::string(16, 'o')), 1000, 0);
  a.add("s", "k", block(0, true, k16), 1000, 0);
  EXPECT_EQ(a.pendingBytes(), 16u);
  EXPECT_EQ(a.add("s", "k", block(1, false, "!"), 1000, 0).body, k16 + "!");
}

TEST(CoapBlocks, TheBodyIsCappedAsItGrowsAndBySize1) {
  CoapBlockAssembler a;
  a.add("s", "k", block(0, true, k16), 40, 0);
  a.add("s", "k", block(1, true, k16), 40, 0);
  auto got = a.add("s", "k", block(2, true, k16), 40, 0);
  EXPECT_EQ(got.outcome, Outcome::kTooLarge);
  EXPECT_EQ(got.why, "the body is larger than 40 bytes");
  EXPECT_EQ(a.pending(), 0u);
  EXPECT_EQ(a.pendingBytes(), 0u);
  // The sender's own estimate says so at once: nothing is kept.
  auto first = block(0, true, k16);
  first.size1 = 1ull << 32;
  EXPECT_EQ(a.add("s", "k", first, 40, 0).outcome, Outcome::kTooLarge);
  EXPECT_EQ(a.pending(), 0u);
  // A single block over the cap too.
  EXPECT_EQ(a.add("s", "k", block(0, false, std::string(41, 'x')), 40, 0).outcome, Outcome::kTooLarge);
}

TEST(CoapBlocks, AChangedContentFormatForgetsTheBody) {
  CoapBlockAssembler a;
  a.add("s", "k", block(0, true, k16, 0, 50), 1000, 0);
  EXPECT_EQ(a.add("s", "k", block(1, false, "x", 0, 110), 1000, 0).outcome, Outcome::kIncomplete);
  EXPECT_EQ(a.pending(), 0u);
}

TEST(CoapBlocks, AnIdleBodyIsForgotten) {
  CoapBlockAssembler a;
  a.add("s", "k", block(0, true, k16), 1000, 0);
  a.add("s", "other", block(0, true, k16), 1000, kCoapBlockIdleMs);
  EXPECT_EQ(a.pending(), 2u);
  // Past the idle time of the first: gone, its next block finds nothing.
  EXPECT_EQ(a.add("s", "k", block(1, false, "x"), 1000, kCoapBlockIdleMs + 1001).outcome,
            Outcome::kIncomplete);
  EXPECT_EQ(a.pending(), 1u);
  EXPECT_EQ(a.pendingBytes(), 16u);
}

TEST(CoapBlocks, OneSenderTakesAFewSlotsOnly) {
  CoapBlockAssembler a;
  for (size_t i = 0; i < kCoapMaxBodiesPerSender; ++i)
    ASSERT_EQ(a.add("flood", named("f", i), block(0, true, k16), 1000, 0).outcome, Outcome::kContinue);
  auto got = a.add("flood", "one more", block(0, true, k16), 1000, 0);
  EXPECT_EQ(got.outcome, Outcome::kBusy);
  EXPECT_NE(got.why.find("this sender has 16 bodies"), std::string::npos) << got.why;
  // Others still get theirs; a finished or forgotten body frees the sender's slot.
  EXPECT_EQ(a.add("device", "d", block(0, true, k16), 1000, 0).outcome, Outcome::kContinue);
  EXPECT_EQ(a.add("flood", "f0", block(1, false, "x"), 1000, 0).outcome, Outcome::kComplete);
  EXPECT_EQ(a.add("flood", "again", block(0, true, k16), 1000, 0).outcome, Outcome::kContinue);
  EXPECT_EQ(a.add("flood", "f1", block(5, false, "x"), 1000, 0).outcome, Outcome::kIncomplete);
  EXPECT_EQ(a.add("flood", "again 2", block(0, true, k16), 1000, 0).outcome, Outcome::kContinue);
}

TEST(CoapBlocks, BodiesInProgressAreBounded) {
  CoapBlockAssembler a;
  for (size_t i = 0; i < kCoapMaxPendingBodies; ++i)
    ASSERT_EQ(a.add(named("s", i % 16), std::to_string(i), block(0, true, k16), 1000, 0).outcome,
              Outcome::kContinue);
  auto got = a.add("s", "one more", block(0, true, k16), 1000, 0);
  EXPECT_EQ(got.outcome, Outcome::kBusy);
  EXPECT_EQ(a.pending(), kCoapMaxPendingBodies);
  // Bytes too: blocks of 1 KiB up to the cap.
  CoapBlockAssembler b;
  const std::string k1024(1024, 'q');
  const uint64_t max_body = uint64_t{1} << 40;
  size_t kept = 0;
  Outcome last = Outcome::kContinue;
  for (uint32_t num = 0; last == Outcome::kContinue; ++num) {
    last = b.add("s", "big", block(num, true, k1024, 6), max_body, 0).outcome;
    if (last == Outcome::kContinue) kept += 1024;
  }
  EXPECT_EQ(last, Outcome::kBusy);
  EXPECT_EQ(kept, kCoapMaxPendingBytes);
  EXPECT_EQ(b.pendingBytes(), 0u);  // the body that would pass the cap is forgotten
}

}  // namespace
}  // namespace ganglion::edge
