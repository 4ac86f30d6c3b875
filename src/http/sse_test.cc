#include "http/sse.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ganglion::http {
namespace {

struct Seen {
  std::string type, data, id;
  bool operator==(const Seen&) const = default;
};

std::vector<Seen> parseSplit(std::string_view bytes, size_t split) {
  SseParser p;
  std::vector<Seen> out;
  auto on = [&](const SseEvent& e) {
    out.push_back({std::string(e.type), std::string(e.data), std::string(e.id)});
  };
  EXPECT_TRUE(p.feed(bytes.substr(0, split), on));
  EXPECT_TRUE(p.feed(bytes.substr(split), on));
  return out;
}

TEST(Sse, EveryLineEndingAndEverySplitGiveTheSameEvents) {
  const std::vector<Seen> want = {{"", "one", ""}, {"delta", "a\nb", "7"}, {"", "", "7"}};
  for (std::string_view eol : {"\n", "\r\n", "\r"}) {
    std::string text;
    for (std::string_view line :
         {": ping", "data: one", "", "event: delta", "id: 7", "data: a", "data:b", "", "data", ""}) {
      text.append(line);
      text.append(eol);
    }
    for (size_t split = 0; split <= text.size(); ++split)
      EXPECT_EQ(parseSplit(text, split), want) << "split at " << split << " eol " << eol.size();
  }
}

TEST(Sse, ByteAtATime) {
  std::string text = "event: message_start\ndata: {\"x\":1}\n\nevent: message_stop\ndata: {}\n\n";
  SseParser p;
  std::vector<std::string> types;
  for (char c : text)
    ASSERT_TRUE(p.feed(std::string_view(&c, 1), [&](const SseEvent& e) { types.emplace_back(e.type); }));
  EXPECT_EQ(types, (std::vector<std::string>{"message_start", "message_stop"}));
  EXPECT_FALSE(p.midEvent());
}

TEST(Sse, UnfinishedEventIsReported) {
  SseParser p;
  int n = 0;
  ASSERT_TRUE(p.feed("data: {\"partial\"", [&](const SseEvent&) { ++n; }));
  EXPECT_EQ(n, 0);
  EXPECT_TRUE(p.midEvent());
}

TEST(Sse, OversizedEventFails) {
  SseParser p(64);
  std::string big = "data: " + std::string(100, 'x');
  EXPECT_FALSE(p.feed(big, [](const SseEvent&) {}));
  EXPECT_TRUE(p.failed());
  EXPECT_FALSE(p.feed("\n\n", [](const SseEvent&) {}));
  SseParser q(64);
  std::string many;
  for (int i = 0; i < 20; ++i) many += "data: xxxxxx\n";
  EXPECT_FALSE(q.feed(many, [](const SseEvent&) {}));
}

}  // namespace
}  // namespace ganglion::http
