#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <random>

#include "llm/tokenizer/bpe.h"
#include "llm/tokenizer/data.h"
#include "llm/tokenizer/encoding.h"
#include "llm/tokenizer/prompt_count.h"

namespace ganglion::llm::tokenizer {
namespace {
namespace json = boost::json;

const Encoding& o200k() {
  const Encoding* e = encodingNamed("o200k_base");
  if (!e) throw std::runtime_error("o200k_base unavailable");
  return *e;
}
const Encoding& cl100k() {
  const Encoding* e = encodingNamed("cl100k_base");
  if (!e) throw std::runtime_error("cl100k_base unavailable");
  return *e;
}

TEST(Vocabulary, EmbeddedDataIsOpenAIs) {
  ASSERT_FALSE(embeddedVocab("o200k_base").empty());
  EXPECT_EQ(o200k().vocab().size(), 199'998u);
  EXPECT_EQ(cl100k().vocab().size(), 100'256u);
  EXPECT_EQ(o200k().vocab().maxTokenBytes(), 128u);
  EXPECT_EQ(encodingNamed("p50k_base"), nullptr);
  for (const Encoding* e : {&o200k(), &cl100k()})
    for (uint32_t r = 0; r < e->vocab().size(); r += 997) EXPECT_EQ(e->vocab().rank(e->vocab().bytes(r)), r);
}

TEST(Vocabulary, RefusesMalformedBlobs) {
  std::string why;
  EXPECT_FALSE(Vocab::load("", why));
  EXPECT_FALSE(Vocab::load("GBPE\x02\0\0\0\0\0\0\0", why));
  std::string blob(
      "GBPE\x01\0\0\0\x02\0\0\0\x01"
      "a\x05"
      "b",
      15);  // second token truncated
  EXPECT_FALSE(Vocab::load(blob, why));
  EXPECT_EQ(why, "truncated .bpe vocabulary");
  std::string no_bytes(
      "GBPE\x01\0\0\0\x01\0\0\0\x01"
      "a",
      14);  // only "a": other bytes lack a rank
  EXPECT_FALSE(Vocab::load(no_bytes, why));
  EXPECT_EQ(why, "a single byte has no rank in the .bpe vocabulary");
}

// Ids from tiktoken 1.0.22 (OpenAI's Rust core) for fixed and random texts: every script,
// contractions, whitespace runs, U+0085/U+FEFF/U+180E, special-token text, long pieces.
TEST(Encoding, MatchesTiktokenOnGoldenCases) {
  std::ifstream in(std::string(GANGLION_SOURCE_DIR) + "/tests/fixtures/tokenizer/golden.jsonl");
  ASSERT_TRUE(in) << "golden.jsonl missing";
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    const auto o = json::parse(line).as_object();
    const std::string text(o.at("text").as_string());
    for (const Encoding* e : {&o200k(), &cl100k()}) {
      std::vector<uint32_t> want;
      for (const auto& id : o.at(e->name()).as_array()) want.push_back(uint32_t(id.to_number<uint64_t>()));
      EXPECT_EQ(e->encode(text), want) << e->name() << " on " << json::serialize(json::string(text));
      EXPECT_EQ(e->count(text), want.size()) << e->name();
      EXPECT_EQ(e->decode(want), text);
    }
    ++cases;
  }
  EXPECT_GT(cases, 150);
}

TEST(Encoding, KnownIds) {
  EXPECT_EQ(cl100k().encode("Hello, world!"), (std::vector<uint32_t>{9906, 11, 1917, 0}));
  EXPECT_EQ(o200k().encode("Hello, world!"), (std::vector<uint32_t>{13225, 11, 2375, 0}));
  EXPECT_EQ(o200k().encode("12345678"), (std::vector<uint32_t>{7633, 19354, 4388}));
  EXPECT_EQ(o200k().count(""), 0u);
}

TEST(Encoding, InvalidUtf8CountsAsReplacementCharacters) {
  // Each bad byte is U+FFFD, as if the client had sent it: never more tokens than bytes.
  const std::string bad = "ok \xff\xfe then \xed\xa0\x80 surrogate \xc0\xaf overlong";
  const auto ids = o200k().encode(bad);
  EXPECT_EQ(o200k().decode(ids),
            "ok \xef\xbf\xbd\xef\xbf\xbd then \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate "
            "\xef\xbf\xbd\xef\xbf\xbd overlong");
  EXPECT_EQ(o200k().count(bad), ids.size());
  EXPECT_LE(ids.size(), bad.size());
  // A truncated sequence is one U+FFFD (its maximal subpart), as browsers and Python decode it.
  EXPECT_EQ(o200k().decode(o200k().encode("a\xe2\x82 b\xf0\x9f\x98")), "a\xef\xbf\xbd b\xef\xbf\xbd");
}

TEST(Encoding, BudgetStopsLongPiecesAndCancellation) {
  CountBudget budget;
  budget.max_piece = 100;
  EXPECT_EQ(o200k().count("short words only", &budget), 3u);
  EXPECT_FALSE(budget.stopped);
  std::string long_word(500, 'x');
  long_word.insert(0, "a ");
  o200k().count(long_word, &budget);
  EXPECT_TRUE(budget.stopped);
  std::atomic<bool> cancel{true};
  CountBudget cancelled;
  cancelled.cancel = &cancel;
  std::string many;
  for (int i = 0; i < 2000; ++i) many += " w";
  EXPECT_LT(o200k().count(many, &cancelled), 2000u);
  EXPECT_TRUE(cancelled.stopped);
}

TEST(Encoding, LongPiecesMergeAsShortOnes) {
  // The heap merge (pieces >= 128 bytes) and tiktoken's linear rescans agree on any piece.
  std::mt19937 rng(7);
  const std::string alphabet = "abcdeAB _-.01\xc3\xa9\xe6\x9d\xb1";
  for (const Encoding* e : {&o200k(), &cl100k()}) {
    for (int round = 0; round < 300; ++round) {
      std::string piece;
      const size_t len = 1 + rng() % 400;
      while (piece.size() < len) piece += alphabet[rng() % alphabet.size()];
      std::vector<uint32_t> linear, heap;
      mergeLinear(e->vocab(), piece, linear);
      mergeHeap(e->vocab(), piece, heap);
      ASSERT_EQ(linear, heap) << e->name() << " on " << piece;
    }
  }
}

TEST(Encoding, NeverMoreTokensThanBytes) {
  std::mt19937 rng(11);
  for (int round = 0; round < 200; ++round) {
    std::string s;
    for (size_t n = rng() % 300; n; --n) s += char(rng() % 256);
    EXPECT_LE(o200k().count(s), s.size());
    EXPECT_LE(cl100k().count(s), s.size());
  }
  const std::string dense(100'000, 'a');  // one piece of 100 kB: the heap merge
  EXPECT_LE(o200k().count(dense), dense.size());
  EXPECT_EQ(o200k().decode(o200k().encode(dense)), dense);
}

TEST(EncodingForModel, PrefixTable) {
  EXPECT_EQ(encodingForModel("gpt-4o-mini"), "o200k_base");
  EXPECT_EQ(encodingForModel("gpt-4.1-nano-2025-04-14"), "o200k_base");
  EXPECT_EQ(encodingForModel("gpt-5"), "o200k_base");
  EXPECT_EQ(encodingForModel("o1"), "o200k_base");
  EXPECT_EQ(encodingForModel("o3-mini"), "o200k_base");
  EXPECT_EQ(encodingForModel("o10"), "");
  EXPECT_EQ(encodingForModel("ft:gpt-4o-2024-08-06:org::abc"), "o200k_base");
  EXPECT_EQ(encodingForModel("gpt-4-turbo"), "cl100k_base");
  EXPECT_EQ(encodingForModel("gpt-4"), "cl100k_base");
  EXPECT_EQ(encodingForModel("gpt-35-turbo"), "cl100k_base");
  EXPECT_EQ(encodingForModel("text-embedding-3-small"), "cl100k_base");
  EXPECT_EQ(encodingForModel("claude-3-5-haiku"), "");
  EXPECT_EQ(encodingForModel("gpt-oss-20b"), "");  // o200k_harmony: other framing
}

// The OpenAI cookbook's examples, whose counts it checked against the API: 129 (gpt-4,
// gpt-3.5-turbo) and 124 (gpt-4o) for six messages; 105 and 101 for a weather tool.
TEST(PromptCount, CookbookExamples) {
  const auto chat = json::parse(R"({"messages":[
    {"role":"system","content":"You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role":"system","name":"example_user","content":"New synergies will help drive top-line growth."},
    {"role":"system","name":"example_assistant","content":"Things working well together will increase revenue."},
    {"role":"system","name":"example_user","content":"Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role":"system","name":"example_assistant","content":"Let's talk later when we're less busy about how to do better."},
    {"role":"user","content":"This late pivot means we don't have time to boil the ocean for the client deliverable."}]})")
                        .as_object();
  auto a = countChatPrompt(cl100k(), chat, 0);
  EXPECT_EQ(a.tokens, 129u);
  EXPECT_TRUE(a.exact);
  EXPECT_EQ(countChatPrompt(o200k(), chat, 0).tokens, 124u);

  const auto tools = json::parse(R"({"messages":[
    {"role":"system","content":"You are a helpful assistant that can answer to questions about the weather."},
    {"role":"user","content":"What's the weather like in San Francisco?"}],
    "tools":[{"type":"function","function":{"name":"get_current_weather","description":"Get the current weather in a given location",
      "parameters":{"type":"object","properties":{
        "location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},
        "unit":{"type":"string","description":"The unit of temperature to return","enum":["celsius","fahrenheit"]}},
        "required":["location"]}}}]})")
                         .as_object();
  auto b = countChatPrompt(cl100k(), tools, 0);
  EXPECT_EQ(b.tokens, 105u);
  EXPECT_FALSE(b.exact);  // tool rendering is a fitted formula
  EXPECT_EQ(countChatPrompt(o200k(), tools, 0).tokens, 101u);
}

TEST(PromptCount, PartsToolCallsAndMediaAreEstimates) {
  const auto body = json::parse(R"({"messages":[
    {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"x"}}]},
    {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
    {"role":"tool","tool_call_id":"c1","content":"42"}]})")
                        .as_object();
  auto c = countChatPrompt(o200k(), body, 85);
  EXPECT_FALSE(c.exact);
  EXPECT_GT(c.tokens, 85u + 3 * 3 + 3);
  const auto plain =
      json::parse(R"({"messages":[{"role":"user","content":[{"type":"text","text":"hello there"}]}]})")
          .as_object();
  auto p = countChatPrompt(o200k(), plain, 0);
  EXPECT_TRUE(p.exact);                 // one text part is the same as a string
  EXPECT_EQ(p.tokens, 3 + 1 + 2 + 3u);  // framing, "user", "hello there", priming
}

TEST(PromptCount, EmbeddingsHaveNoFraming) {
  EXPECT_EQ(countEmbeddingsInput(cl100k(), json::value("Hello, world!")).tokens, 4u);
  EXPECT_EQ(countEmbeddingsInput(cl100k(), json::parse(R"(["Hello, world!", [1,2,3], 7])")).tokens,
            4u + 3 + 1);
}

TEST(PromptCount, ResponsesInputFramedAsMessages) {
  const auto body = json::parse(R"({"instructions":"Be brief.","input":"Hello, world!"})").as_object();
  auto c = countResponsesPrompt(o200k(), body);
  // system message: 3 + "system" + "Be brief."; user message: 3 + "user" + 4; priming 3.
  EXPECT_EQ(c.tokens, 3 + o200k().count("system") + o200k().count("Be brief.") + 3 + 1 + 4 + 3);
  EXPECT_TRUE(c.exact);
  const auto items = json::parse(R"({"input":[{"role":"user","content":[{"type":"input_text","text":"hi"},
    {"type":"input_image","image_url":"data:..."}]},{"type":"function_call_output","call_id":"c","output":"ok"}]})")
                         .as_object();
  auto d = countResponsesPrompt(o200k(), items);
  EXPECT_FALSE(d.exact);
  EXPECT_GE(d.tokens, 85u);
}

}  // namespace
}  // namespace ganglion::llm::tokenizer
