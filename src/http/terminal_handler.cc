#include "http/terminal_handler.h"

namespace ganglion::http {

Task<void> sendGatewayLocalReply(ServerConnection& conn, const LocalReply& reply) {
  if (!reply.type.empty())
    co_return co_await conn.sendError(reply.status, reply.type, reply.message, &reply.headers);
  ResponseHead head;
  head.status = reply.status;
  head.headers = reply.headers;
  head.has_content_length = true;
  co_await conn.writeResponse(&head, {}, true);
}

void renderGatewayLocalReply(const LocalReply& reply, ResponseHead& head, std::string& body) {
  head.status = reply.status;
  head.headers = reply.headers;
  body.clear();
  if (!reply.type.empty()) {
    body = jsonErrorBody(reply.status, reply.type, reply.message);
    head.headers.set("Content-Type", "application/json");
  }
  head.chunked = false;
  head.has_content_length = true;
  head.content_length = body.size();
}

void TerminalHandler::renderLocalReply(const ServerConnection&, const LocalReply& reply, ResponseHead& head,
                                       std::string& body) {
  renderGatewayLocalReply(reply, head, body);
}

Task<void> TerminalHandler::sendLocalReply(ServerConnection& conn, const LocalReply& reply) {
  return sendGatewayLocalReply(conn, reply);
}

}  // namespace ganglion::http
