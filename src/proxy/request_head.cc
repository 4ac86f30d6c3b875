#include "proxy/request_head.h"

#include <charconv>

#include "http/path.h"

namespace ganglion::proxy {

bool buildUpstreamHead(std::string& out, const http::RequestHead& req, const CompiledRoute& route,
                       const std::string& client_ip, std::string_view default_host) {
  const auto& ops = route.config->request_headers;
  out.clear();
  out += req.method;
  out += ' ';
  if (route.config->rewrite_path_prefix) {
    std::string rewritten = http::rewriteTarget(req, route);
    if (http::hasDotSegment(rewritten)) return false;
    out += rewritten;
  } else {
    out += req.target;
  }
  out += " HTTP/1.1\r\n";
  std::string_view connection = req.headers.get("connection");
  std::string_view forwarded_for;
  bool has_host = false;
  for (const auto& h : req.headers) {
    bool upgrade_header = req.upgrade && iequals(h.name, "upgrade");
    if ((http::isHopByHop(h.name) && !upgrade_header) || iequals(h.name, "content-length") ||
        iequals(h.name, "expect"))
      continue;
    if (!upgrade_header && !connection.empty() && headerListContains(connection, h.name)) continue;
    if (iequals(h.name, "x-forwarded-for")) {
      forwarded_for = h.value;
      continue;
    }
    if (iequals(h.name, "x-forwarded-proto")) continue;
    bool replaced = false;
    for (const auto& name : ops.remove) replaced = replaced || iequals(name, h.name);
    for (const auto& kv : ops.add) replaced = replaced || iequals(kv.first, h.name);
    if (replaced) continue;
    has_host = has_host || iequals(h.name, "host");
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  for (const auto& [name, value] : ops.add) {
    has_host = has_host || iequals(name, "host");
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (!has_host) {
    // HTTP/1.0 clients may omit Host; HTTP/1.1 upstreams require one.
    out += "Host: ";
    out += default_host;
    out += "\r\n";
  }
  out += "X-Forwarded-For: ";
  if (!forwarded_for.empty()) {
    out += forwarded_for;
    out += ", ";
  }
  out += client_ip;
  out += "\r\nX-Forwarded-Proto: http\r\n";
  if (req.upgrade) out += "Connection: Upgrade\r\n";
  if (req.chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (req.has_content_length) {
    char digits[24];
    auto r = std::to_chars(digits, digits + sizeof digits, req.content_length);
    out += "Content-Length: ";
    out.append(digits, r.ptr);
    out += "\r\n";
  }
  out += "\r\n";
  return true;
}

}  // namespace ganglion::proxy
