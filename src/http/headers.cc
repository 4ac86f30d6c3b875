#include "http/headers.h"

#include <fmt/format.h>

namespace ganglion::http {

bool isHopByHop(std::string_view name) {
  static constexpr std::string_view kHopByHop[] = {
      "connection", "keep-alive", "proxy-connection", "transfer-encoding",
      "te",         "trailer",    "upgrade",          "proxy-authenticate"};
  for (auto h : kHopByHop)
    if (iequals(h, name)) return true;
  return false;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string jsonErrorBody(int code, std::string_view type, std::string_view message) {
  std::string body = fmt::format(R"({{"error":{{"code":{},"type":")", code);
  appendJsonEscaped(body, type);
  body += R"(","message":")";
  appendJsonEscaped(body, message);
  body += "\"}}\n";
  return body;
}

bool hasContentCoding(const HeaderList& headers) {
  for (const auto& h : headers) {
    if (!iequals(h.name, "content-encoding")) continue;
    for (std::string_view rest = h.value; !rest.empty();) {
      const size_t comma = rest.find(',');
      const std::string_view coding = trim(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (!coding.empty() && !iequals(coding, "identity")) return true;
    }
  }
  return false;
}

}  // namespace ganglion::http
