#include "edge/connectors/http_ingest.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <chrono>

#include "base/strings.h"
#include "base/time.h"
#include "loop/pools.h"

namespace ganglion::edge {

namespace json = boost::json;

namespace {

/// Bodies larger than this are decoded on the compute pool.
constexpr size_t kComputePoolBytes = 64 * 1024;

/// `?device=` and `?metric=`, percent-decoded (empty when absent or the query is malformed).
/// `error`: one of them given twice, as a CoAP endpoint refuses it.
struct QueryNames {
  std::string device, metric, error;
};
QueryNames queryNames(std::string_view target) {
  QueryNames out;
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return out;
  bool device = false, metric = false;
  for (const auto& p : url->params()) {
    if (p.key != "device" && p.key != "metric") continue;
    bool& seen = p.key == "device" ? device : metric;
    if (seen) {
      out.error = fmt::format("{} is given twice", p.key);
      return out;
    }
    seen = true;
    (p.key == "device" ? out.device : out.metric) = p.value;
  }
  return out;
}

/// The device a prefix route's path names after its prefix (one segment, percent-decoded).
std::string deviceFromPath(std::string_view path, const http::CompiledRoute& route) {
  if (route.path_kind != http::CompiledRoute::PathKind::kPrefix || path.size() <= route.path.size())
    return {};
  std::string_view rest = path.substr(route.path.size());
  while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos) return {};
  auto decoded = boost::urls::make_pct_string_view(rest);
  if (!decoded) return {};
  return decoded->decode();
}

}  // namespace

http::Task<void> HttpIngest::refuse(http::ServerConnection& conn, std::string_view connector, int status,
                                    std::string_view type, std::string_view message,
                                    std::string_view retry_after, size_t rejected) {
  runtime_.countIngest(connector, 0, rejected, true);
  http::HeaderList headers;
  if (!retry_after.empty()) headers.add("Retry-After", retry_after);
  co_await conn.sendError(status, type, message, retry_after.empty() ? nullptr : &headers);
}

http::Task<void> HttpIngest::refuseStopped(http::ServerConnection& conn, std::string_view connector) {
  // Stopped by an operator, for as long as they choose: a sender that retries is told to
  // come back in a while, not at once.
  const std::string message = fmt::format("connector '{}' is stopped", connector);
  co_await refuse(conn, connector, 503, "connector_stopped", message, "30");
}

http::Task<void> HttpIngest::serve(http::RoutedRequest& req) {
  auto& conn = req.conn;
  const auto& request = conn.request();
  const ConnectorConfig& connector = config_.connectors[req.route.action.target];
  req.report.upstream = connector.name;
  if (request.method != "POST") {
    http::HeaderList allow;
    allow.add("Allow", "POST");
    co_return co_await conn.sendError(405, "method_not_allowed", "ingest routes take readings with POST",
                                      &allow);
  }
  if (!runtime_.running())  // a binary upgrade's successor, before the old process let go of the edge
    co_return co_await refuse(conn, connector.name, 503, "edge_starting",
                              "the gateway's edge is starting (a binary upgrade hands it over): try again",
                              "1");
  if (runtime_.connectorStopped(connector.name))  // before the body: none of it is read
    co_return co_await refuseStopped(conn, connector.name);
  if (http::hasContentCoding(request.headers))  // gzip and the like: not decoded here
    co_return co_await refuse(conn, connector.name, 415, "unsupported_media_type",
                              "Content-Encoding is not supported: send the readings unencoded");
  // Two Content-Types name two formats: which one the sender meant is not known.
  if (std::count_if(request.headers.begin(), request.headers.end(),
                    [](const http::Header& h) { return iequals(h.name, "content-type"); }) > 1)
    co_return co_await refuse(conn, connector.name, 400, "bad_request",
                              "Content-Type is given more than once");
  auto format = formatOfContentType(request.headers.get("content-type"), connector.format);
  if (!format)
    co_return co_await refuse(
        conn, connector.name, 415, "unsupported_media_type",
        "send application/json, application/senml+json or text/plain (InfluxDB line protocol)");
  if (const int failed = co_await conn.readWholeBody(connector.max_body)) {
    // Named locals, not temporaries inside the co_await: GCC 12 frees those twice.
    std::string_view type = failed == 413   ? "payload_too_large"
                            : failed == 503 ? "overloaded"
                            : failed == 408 ? "request_timeout"
                                            : "bad_request";
    std::string message = "the body could not be read";
    if (failed == 413) message = fmt::format("the body is larger than {} bytes", connector.max_body);
    if (failed == 408) message = "the body came too slowly";
    if (failed == 503) message = "the gateway holds too many bodies; try again";
    co_return co_await refuse(conn, connector.name, failed, type, message);
  }
  std::string device = deviceFromPath(request.path(), req.route);
  QueryNames named = queryNames(request.target);
  if (named.error.empty() && !device.empty() && !named.device.empty())
    named.error = "the device is named twice (path and ?device=)";
  if (!named.error.empty()) co_return co_await refuse(conn, connector.name, 400, "bad_request", named.error);
  if (device.empty()) device = std::move(named.device);
  std::string metric = named.metric.empty() ? connector.metric : std::move(named.metric);

  const PayloadContext ctx = connector.payloadContext(device, metric);
  // Decoding a large body takes milliseconds: that goes to the compute pool, so the worker's
  // other connections do not wait on it.
  struct Decode {
    PayloadFormat format;
    std::string_view body;
    const PayloadContext* ctx;
    IncomingReadings* readings;
    DecodeReport report;
    Result<void> run() {
      return decodePayload(
          format, body, *ctx, [this](const DecodedReading& r) { readings->add(r); }, report);
    }
  };
  auto readings = std::make_shared<IncomingReadings>();
  readings->connector = connector.name;
  Decode job{*format, conn.wholeBody(), &ctx, readings.get(), {}};
  Result<void> decoded;
  if (job.body.size() > kComputePoolBytes) {
    Decode* j = &job;  // the lambda holds a plain pointer (GCC 12 and co_await temporaries)
    decoded = co_await loop::runCompute([j] { return j->run(); });
  } else {
    decoded = job.run();
  }
  DecodeReport& report = job.report;
  if (!decoded.ok()) {
    const std::string message = payloadRefusal(*format, decoded.error());
    co_return co_await refuse(conn, connector.name, 400, "bad_payload", message);
  }
  if (readings->items.empty()) {
    const std::string message = noReadingsRefusal(report);
    co_return co_await refuse(conn, connector.name, 422, "no_readings", message, {}, report.rejected);
  }
  const size_t accepted = readings->items.size();
  std::shared_ptr<DeliveryTicket> ticket;
  const int delivered = runtime_.deliver(connector.name, std::move(readings), &ticket);
  if (delivered == EdgeRuntime::kStopped) co_return co_await refuseStopped(conn, connector.name);
  if (delivered < 0) {
    http::HeaderList retry;
    retry.add("Retry-After", "1");
    co_return co_await conn.sendError(503, "overloaded",
                                      "the pipelines have too many readings waiting; try again", &retry);
  }
  // A pipeline with an ingest log: the answer waits until the readings are on disk.
  if (ticket && !co_await ticket->wait()) {
    http::HeaderList retry;
    retry.add("Retry-After", "1");
    co_return co_await conn.sendError(
        503, "not_stored", "the readings could not be written to the ingest log; try again", &retry);
  }
  runtime_.countIngest(connector.name, accepted, report.rejected, false);
  req.report.attribute("readings", static_cast<uint64_t>(accepted));
  if (report.rejected) req.report.attribute("rejected", static_cast<uint64_t>(report.rejected));
  json::object answer;
  answer["accepted"] = accepted;
  answer["rejected"] = report.rejected;
  if (report.rejected) answer["first_rejection"] = report.first_reason;
  const std::string body = json::serialize(answer);
  http::ResponseHead head;
  head.status = 202;
  head.headers.add("Content-Type", "application/json");
  head.has_content_length = true;
  head.content_length = body.size();
  std::array<std::string_view, 1> pieces{body};
  co_await conn.writeResponse(&head, pieces, true);
}

}  // namespace ganglion::edge
