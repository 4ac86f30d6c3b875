// libFuzzer target for output_guard's reading of a held response body (what an upstream or a
// model sends): the first byte picks the Content-Type (E: text/event-stream, J:
// application/json, N: application/x-ndjson, else text/plain), the rest is the body. The
// verdict must be to let it pass or to refuse with 400 output_blocked or 502
// response_unreadable, never anything else, and a body that holds a denied text as it is
// ("secret sauce") must never pass. Run by scripts/fuzz.sh.
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/node.h"
#include "config/reader.h"
#include "filters/registry.h"
#include "fuzz_check.h"
#include "http/filter.h"

namespace {

using namespace ganglion;

std::shared_ptr<const http::Filter> buildGuard() {
  auto tree = config::fromYaml(YAML::Load(R"({ deny: [ '(?i)secret\s+sauce', '\b\d{3}-\d{2}-\d{4}\b' ] })"));
  CHECK(std::holds_alternative<config::Node>(tree));
  config::Reader r("fuzz", false);
  std::vector<config::KeyConfig> keys;
  config::StateConfig state;
  filters::FilterInputs inputs{keys, std::make_shared<config::KeyTable>(), state};
  auto built = filters::buildFilter("output_guard", std::get<config::Node>(tree), r, inputs);
  CHECK(built.filter && r.errors.empty());
  return built.filter;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto guard = buildGuard();
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const char kind = input.front();
  std::string_view body = input.substr(1);
  http::ResponseHead head;
  head.status = 200;
  head.headers.add("Content-Type", kind == 'E'   ? "text/event-stream"
                                   : kind == 'J' ? "application/json"
                                   : kind == 'N' ? "application/x-ndjson"
                                                 : "text/plain");
  http::RequestHead request;
  http::FilterContext ctx{request, "127.0.0.1", {}, {}, {}, {}, nullptr, {}};
  const auto status = guard->onResponseBody(ctx, head, body);
  CHECK(status == http::FilterStatus::kContinue || status == http::FilterStatus::kReply);
  if (status == http::FilterStatus::kReply) {
    CHECK((ctx.reply.status == 400 && ctx.reply.type == "output_blocked") ||
          (ctx.reply.status == 502 && ctx.reply.type == "response_unreadable"));
  }
  if (body.find("secret sauce") != std::string_view::npos) CHECK(status == http::FilterStatus::kReply);
  return 0;
}
