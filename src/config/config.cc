#include "config/config.h"

namespace ganglion::config {

std::string HostPort::text() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string ConfigError::text() const {
  if (line > 0) return file + ":" + std::to_string(line) + ": " + message;
  if (!path.empty()) return file + ": " + path + ": " + message;
  return file + ": " + message;
}

}  // namespace ganglion::config
