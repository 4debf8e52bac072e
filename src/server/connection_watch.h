// Whether the client of an HTTP request is still connected, for handlers that wait before they
// write anything (unstreamed generations, which may run for minutes). A streamed reply notices a
// disconnect when a write fails; an unstreamed one writes only at the end.
//
// cpp-httplib 0.11 (Debian 12's) gives a handler no view of its socket, so the watch finds it by
// its addresses: the one socket of this process whose local and peer addresses are the request's
// (Request::local_addr/local_port, remote_addr/remote_port), looked up once through
// /proc/self/fd. httplib keeps the connection open while its handler runs, so the descriptor
// cannot be closed and reused under the watch. Closed() polls it without blocking: a peer that
// closed or reset the connection reads as hang-up. (A client that only shuts down its sending
// side while it waits for the reply reads the same; HTTP clients do not do that.)
//
//   ConnectionWatch watch = ConnectionWatch::Of(request);
//   while (!done) { wait a little; if (watch.Closed()) cancel the request; }
#pragma once

#include <string>

namespace httplib {
struct Request;
}

namespace kiln::server {

class ConnectionWatch {
 public:
  // An inert watch (never closed) when no socket of this process has those addresses.
  static ConnectionWatch Of(const httplib::Request& request);
  static ConnectionWatch Of(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port);
  bool Closed() const;
  bool watching() const { return fd_ >= 0; }

 private:
  explicit ConnectionWatch(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace kiln::server
