#include "server/connection_watch.h"

#include <dirent.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>

namespace kiln::server {

namespace {

// A socket address as httplib writes it into a Request: the numeric host and the port.
bool AddressOf(const sockaddr_storage& address, socklen_t length, std::string* host, int* port) {
  char name[NI_MAXHOST];
  char service[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&address), length, name, sizeof(name), service, sizeof(service),
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  *host = name;
  *port = std::atoi(service);
  return true;
}

bool Matches(int fd, const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port) {
  struct stat info {};
  if (fstat(fd, &info) != 0 || !S_ISSOCK(info.st_mode)) return false;
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  std::string host;
  int port = -1;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 || !AddressOf(address, length, &host, &port) ||
      port != remote_port || host != remote_addr) {
    return false;
  }
  length = sizeof(address);
  return getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0 && AddressOf(address, length, &host, &port) &&
         port == local_port && host == local_addr;
}

}  // namespace

ConnectionWatch ConnectionWatch::Of(const httplib::Request& request) {
  return Of(request.local_addr, request.local_port, request.remote_addr, request.remote_port);
}

ConnectionWatch ConnectionWatch::Of(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port) {
  if (local_port <= 0 || remote_port <= 0) return ConnectionWatch(-1);
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return ConnectionWatch(-1);
  int found = -1;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    if (Matches(static_cast<int>(fd), local_addr, local_port, remote_addr, remote_port)) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return ConnectionWatch(found);
}

bool ConnectionWatch::Closed() const {
  if (fd_ < 0) return false;
  pollfd entry{fd_, POLLRDHUP, 0};
  return poll(&entry, 1, 0) > 0 && (entry.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace kiln::server
