// The durable log (edge/queue/durable_log.h) opening and reading segment files whatever their
// bytes: a crash, a disk fault or a hand-edited file. The input becomes a segment's body (byte
// 0: whether it gets a valid segment header, and where a valid frame is appended after it),
// followed by a second segment of known frames. Checks: no crash or over-read (ASan); open
// succeeds; reading from the cursor ends, yields as many frames as frames() counted, and
// every frame of the intact segment comes back, in order, after whatever the damaged one held.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "edge/queue/durable_log.h"

using namespace ganglion::edge;
namespace fs = std::filesystem;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

std::string segmentHeader(uint64_t id) {
  std::string h = "GNGLSEG1";
  h.append(reinterpret_cast<const char*>(&id), 8);
  return h;
}
/// A frame as the log writes it (durable_log.h has the layout).
std::string frame(uint8_t tag, const std::string& payload) {
  std::string f = {'\x4A', '\x6E', static_cast<char>(tag), '\0'};
  const auto length = static_cast<uint32_t>(payload.size());
  f.append(reinterpret_cast<const char*>(&length), 4);
  const uint32_t crc = crc32c(crc32c(0, std::string_view(f).substr(2, 6)), payload);
  f.append(reinterpret_cast<const char*>(&crc), 4);
  return f + payload;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const fs::path dir = fs::temp_directory_path() / fmt::format("ganglion-log-fuzz-{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const bool header = data[0] & 1;
  {
    std::ofstream f(dir / fmt::format("{:020}.seg", 1), std::ios::binary);
    if (header) f << segmentHeader(1);
    f.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  }
  // A second, intact segment.
  {
    std::ofstream f(dir / fmt::format("{:020}.seg", 2), std::ios::binary);
    f << segmentHeader(2);
    for (int i = 0; i < 3; ++i) f << frame(1, fmt::format("intact-{}", i));
  }
  auto opened = DurableLog::open(dir, 4096);
  check(opened.ok());
  DurableLog& log = **opened;
  const uint64_t counted = log.frames();
  LogPosition at = log.cursor();
  std::vector<LogFrame> all;
  for (int rounds = 0; rounds < 100000; ++rounds) {
    const size_t before = all.size();
    log.read(at, 64, 1 << 20, all);
    if (all.size() == before) break;
  }
  check(all.size() == counted);
  check(all.size() >= 3);
  for (int i = 0; i < 3; ++i) check(all[all.size() - 3 + i].payload == fmt::format("intact-{}", i));
  // Appending after whatever was found still reads back.
  check(log.append(0, "tail").ok());
  std::vector<LogFrame> tail;
  log.read(at, 8, 1 << 20, tail);
  check(tail.size() == 1 && tail[0].payload == "tail");
  // A batch whose frame sizes come from the input (crossing into new segments) reads back
  // whole and in order.
  FrameBatch batch;
  std::vector<std::string> want;
  for (size_t i = 0; i < size && i < 64; ++i) {
    want.push_back(fmt::format("b{}-", i) + std::string(static_cast<uint8_t>(data[i]) * 8u, 'x'));
    check(batch.add(static_cast<uint8_t>(i % 3), want.back().substr(0, 3), want.back().substr(3)));
  }
  check(log.append(batch) == want.size());
  std::vector<LogFrame> batched;
  for (int rounds = 0; rounds < 1000; ++rounds) {
    const size_t before = batched.size();
    log.read(at, 16, 1 << 20, batched);
    if (batched.size() == before) break;
  }
  check(batched.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) check(batched[i].payload == want[i] && batched[i].tag == i % 3);
  return 0;
}
