// A terminal handler that answers every request of its routes with one fixed page (the
// `welcome: {}` routes): the page for GET and HEAD, 405 with Allow otherwise.
#pragma once

#include <string>
#include <string_view>

#include "http/terminal_handler.h"

namespace ganglion::http {

class StaticPage final : public TerminalHandler {
 public:
  /// `page` must outlive the handler (the snapshot holds it).
  StaticPage(std::string_view page, std::string_view content_type)
      : page_(page), content_type_(content_type) {}
  /// Called by the connection manager on the worker thread.
  Task<void> serve(RoutedRequest& routed) override;

 private:
  std::string_view page_;
  std::string_view content_type_;
};

}  // namespace ganglion::http
