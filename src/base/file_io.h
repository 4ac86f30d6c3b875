// Small POSIX file helpers shared by the files the gateway writes itself (durable logs,
// state files). Any thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace ganglion {

/// Writes all `n` bytes (retrying short writes and EINTR); false with errno set on failure.
bool writeAll(int fd, const char* p, size_t n);

/// "<what> <path>: <strerror(errno)>", for error messages right after a failed call.
std::string errnoText(std::string_view what, const std::filesystem::path& path);

}  // namespace ganglion
