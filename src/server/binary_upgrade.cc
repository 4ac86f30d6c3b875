#include "server/binary_upgrade.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/strings.h"

extern char** environ;

namespace ganglion::server {

namespace {
constexpr const char* kInheritEnv = "GANGLION_INHERIT_FDS";  // "addr=3,4;addr2=5"
constexpr const char* kReadyEnv = "GANGLION_READY_FD";
}  // namespace

SocketsByAddress takeInheritedSockets() {
  SocketsByAddress out;
  const char* raw = std::getenv(kInheritEnv);
  if (!raw) return out;
  std::string_view text(raw);
  while (!text.empty()) {
    size_t end = text.find(';');
    std::string_view entry = text.substr(0, end);
    size_t eq = entry.rfind('=');
    if (eq != std::string_view::npos) {
      std::string key(entry.substr(0, eq));
      std::string_view fds = entry.substr(eq + 1);
      while (!fds.empty()) {
        size_t comma = fds.find(',');
        if (auto fd = parseUint(fds.substr(0, comma)); fd && *fd > 2 && *fd < 1'000'000) {
          int f = static_cast<int>(*fd);
          ::fcntl(f, F_SETFD, FD_CLOEXEC);  // ours now; not for any further child
          out[key].push_back(f);
        }
        if (comma == std::string_view::npos) break;
        fds.remove_prefix(comma + 1);
      }
    }
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  ::unsetenv(kInheritEnv);
  return out;
}

Result<Successor> spawnSuccessor(const std::vector<std::string>& argv, const SocketsByAddress& sockets) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Error{fmt::format("pipe: {}", std::strerror(errno))};
  // Everything the child needs is built before fork(): after it, only async-signal-safe
  // calls (fcntl, execve, _exit) are allowed in a multi-threaded process.
  std::string inherit;
  std::vector<int> fds;
  for (const auto& [key, list] : sockets) {
    if (!inherit.empty()) inherit += ';';
    inherit += key + '=';
    for (size_t i = 0; i < list.size(); ++i) {
      if (i) inherit += ',';
      inherit += std::to_string(list[i]);
      fds.push_back(list[i]);
    }
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string_view var(*e);
    if (var.rfind(kInheritEnv, 0) == 0 || var.rfind(kReadyEnv, 0) == 0) continue;
    env_strings.emplace_back(var);
  }
  env_strings.push_back(fmt::format("{}={}", kInheritEnv, inherit));
  env_strings.push_back(fmt::format("{}={}", kReadyEnv, pipe_fds[1]));
  std::vector<char*> envp, args;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& a : argv_copy) args.push_back(a.data());
  args.push_back(nullptr);
  char exe[] = "/proc/self/exe";

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return Error{fmt::format("fork: {}", std::strerror(errno))};
  }
  if (pid == 0) {
    for (int fd : fds) ::fcntl(fd, F_SETFD, 0);
    ::fcntl(pipe_fds[1], F_SETFD, 0);
    ::execve(exe, args.data(), envp.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  return Successor{pid, pipe_fds[0]};
}

bool startedByUpgrade() { return std::getenv(kReadyEnv) != nullptr; }

void signalReadyToParent() {
  const char* raw = std::getenv(kReadyEnv);
  if (!raw) return;
  auto fd = parseUint(raw);
  ::unsetenv(kReadyEnv);
  if (!fd) return;
  int f = static_cast<int>(*fd);
  ssize_t n = ::write(f, "ready\n", 6);
  (void)n;
  ::close(f);
}

}  // namespace ganglion::server
