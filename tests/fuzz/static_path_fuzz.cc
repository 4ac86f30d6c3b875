// libFuzzer target for the pure steps of serving static files, all fed by a client's request:
// the URL path → file under the root (resolveStaticPath), the Range field, the If-Match /
// If-None-Match lists and HTTP dates. The first byte picks the part and its flag, the rest is
// the field. What must hold: a resolved path never climbs (no "..", empty, absolute or NUL
// segment) and never names a hidden segment while dotfiles are off; a range lies inside the
// file; a date that parses reads back the same after formatting. Run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/http_date.h"
#include "http/static_site.h"

using namespace ganglion::http;

namespace {

void checkPath(std::string_view path, bool dotfiles) {
  const StaticPath p = resolveStaticPath(path, dotfiles);
  if (p.kind == StaticPath::Kind::kBad) {
    CHECK(!p.problem.empty());
    CHECK(p.relative.empty());
    return;
  }
  if (p.kind == StaticPath::Kind::kHidden) {
    CHECK(!dotfiles);
    return;
  }
  CHECK(!p.relative.empty());
  CHECK(p.relative.front() != '/');
  CHECK(p.relative.find('\0') == std::string::npos);
  if (p.relative == ".") {
    CHECK(p.kind == StaticPath::Kind::kDirectory);
    return;
  }
  std::string_view rest = p.relative;
  bool first = true;
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    CHECK(!segment.empty());
    CHECK(segment != "." && segment != "..");
    if (!dotfiles) CHECK(segment.front() != '.' || (first && segment == ".well-known"));
    first = false;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode % 4) {
    case 0:
      checkPath(text, (mode & 0x10) != 0);
      break;
    case 1: {
      const uint64_t file_size = mode & 0x80 ? 0 : (uint64_t{mode} << 20) + mode;
      ByteRange r;
      if (parseByteRange(text, file_size, r) == RangeAsk::kRange) {
        CHECK(r.first <= r.last);
        CHECK(r.last < file_size);
      }
      break;
    }
    case 2: {
      const EntityTag file_tag = fileEntityTag(1234, 1764460800, 5);
      const std::string_view tag = file_tag.view();
      const bool strong = entityTagListMatches(text, tag, false);
      if (strong) CHECK(entityTagListMatches(text, tag, true));  // strong implies weak
      break;
    }
    case 3:
      if (auto seconds = parseHttpDate(text)) CHECK(parseHttpDate(formatHttpDate(*seconds)) == seconds);
      break;
  }
  return 0;
}
