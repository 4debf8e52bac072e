#include "io/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace kiln {

namespace fs = std::filesystem;

namespace {

// The temporaries being written, for the interrupt handler, which may only use
// async-signal-safe calls (unlink, _exit) and plain memory.
char g_temp_paths[kMaxOpenOutputs][4096];
volatile std::sig_atomic_t g_temp_in_use[kMaxOpenOutputs];
int g_open_temps = 0;
constexpr int kInterruptSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction g_previous[std::size(kInterruptSignals)];

void RemoveTempsAndExit(int signal_number) {
  for (int i = 0; i < kMaxOpenOutputs; ++i) {
    if (g_temp_in_use[i]) ::unlink(g_temp_paths[i]);
  }
  ::_exit(128 + signal_number);
}

// Claims a handler slot for `temp`; the handlers are installed with the first. A signal the
// process ignores (SIGHUP under nohup) stays ignored.
int ClaimSlot(const std::string& temp) {
  for (int i = 0; i < kMaxOpenOutputs; ++i) {
    if (g_temp_in_use[i]) continue;
    if (temp.size() >= sizeof(g_temp_paths[i])) return -1;
    std::memcpy(g_temp_paths[i], temp.c_str(), temp.size() + 1);
    g_temp_in_use[i] = 1;
    if (g_open_temps++ == 0) {
      for (size_t s = 0; s < std::size(kInterruptSignals); ++s) {
        sigaction(kInterruptSignals[s], nullptr, &g_previous[s]);
        if (g_previous[s].sa_handler == SIG_IGN) continue;
        struct sigaction action {};
        action.sa_handler = RemoveTempsAndExit;
        sigaction(kInterruptSignals[s], &action, nullptr);
      }
    }
    return i;
  }
  return -1;
}

void ReleaseSlot(int slot) {
  if (slot < 0) return;
  g_temp_in_use[slot] = 0;
  if (--g_open_temps == 0) {
    for (size_t s = 0; s < std::size(kInterruptSignals); ++s) sigaction(kInterruptSignals[s], &g_previous[s], nullptr);
  }
}

// /dev/stdout, /dev/fd/1 and the like name a descriptor the caller already holds (a terminal, a
// pipe, or a file the shell opened): written in place, whatever it is.
bool NamesOpenDescriptor(const std::string& path) {
  return path == "/dev/stdout" || path == "/dev/stderr" || path.rfind("/dev/fd/", 0) == 0 ||
         path.rfind("/proc/self/fd/", 0) == 0;
}

bool IsInside(const fs::path& child, const fs::path& parent) {
  auto c = child.begin();
  for (auto p = parent.begin(); p != parent.end(); ++p, ++c) {
    if (p->empty()) continue;  // a trailing separator
    if (c == child.end() || *c != *p) return false;
  }
  return true;
}

}  // namespace

Status CheckOutputPath(const std::string& output, const std::vector<std::string>& inputs) {
  if (NamesOpenDescriptor(output)) return Status::Ok();
  std::error_code ec;
  if (fs::is_directory(output, ec)) {
    return Error(ErrorCode::kInvalidArgument, "output " + output + " is a directory; name a file");
  }
  const fs::path resolved = fs::weakly_canonical(fs::absolute(output), ec);
  for (const std::string& input : inputs) {
    if (input.empty() || !fs::exists(input, ec)) continue;
    if (fs::exists(output, ec) && fs::equivalent(output, input, ec)) {
      return Error(ErrorCode::kInvalidArgument, "output " + output + " is the input " + input + "; writing it would destroy the input");
    }
    if (fs::is_directory(input, ec) && !ec && IsInside(resolved, fs::weakly_canonical(fs::absolute(input), ec))) {
      return Error(ErrorCode::kInvalidArgument,
                   "output " + output + " is inside the input directory " + input + "; write it somewhere else");
    }
  }
  return Status::Ok();
}

std::vector<std::string> RemoveStaleTemporaries(const std::string& path) {
  std::vector<std::string> removed;
  if (NamesOpenDescriptor(path)) return removed;
  const fs::path target(path);
  const fs::path directory = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    // kill(pid, 0) fails with ESRCH only when no such process exists (EPERM: it lives).
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (!it->is_regular_file(ec)) continue;
    std::error_code remove_error;
    if (fs::remove(it->path(), remove_error)) removed.push_back(it->path().string());
  }
  return removed;
}

Result<OutputFile> OutputFile::Create(const std::string& path) {
  struct stat info {};
  const bool exists = ::stat(path.c_str(), &info) == 0;
  if (exists && S_ISDIR(info.st_mode)) return Error(ErrorCode::kInvalidArgument, "output " + path + " is a directory; name a file");
  if (NamesOpenDescriptor(path) || (exists && !S_ISREG(info.st_mode))) {
    // A device, FIFO or descriptor: written to, never replaced. (Opening a FIFO waits for its reader.)
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Error(ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
    return OutputFile(path, "", fd, -1);
  }
  // Through a symbolic link, the file it points to is the one replaced.
  std::string target = path;
  if (exists) {
    std::error_code ec;
    const fs::path canonical = fs::canonical(path, ec);
    if (!ec) target = canonical.string();
  }
  const std::string temp = target + ".tmp." + std::to_string(::getpid());
  const int slot = ClaimSlot(temp);
  if (slot < 0) return Error(ErrorCode::kInternal, "more than " + std::to_string(kMaxOpenOutputs) + " outputs open at once (" + temp + ")");
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    const std::string reason = std::strerror(errno);
    ReleaseSlot(slot);
    return Error(ErrorCode::kIo, "cannot create " + temp + ": " + reason);
  }
  // A replaced file keeps its permissions.
  if (exists) (void)::fchmod(fd, info.st_mode & 07777);
  return OutputFile(target, temp, fd, slot);
}

OutputFile::OutputFile(std::string path, std::string temp_path, int fd, int slot)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd), slot_(slot) {}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : path_(std::move(other.path_)), temp_path_(std::move(other.temp_path_)), fd_(other.fd_), slot_(other.slot_) {
  other.fd_ = -1;
  other.slot_ = -1;
  other.temp_path_.clear();
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  ReleaseSlot(slot_);
}

Status OutputFile::WriteError(const char* reason) const {
  return Error(ErrorCode::kIo, "cannot write " + path_ + ": " + reason);
}

Status OutputFile::Write(const void* data, size_t size_bytes) {
  if (fd_ < 0) return WriteError("the file is closed");
  const char* bytes = static_cast<const char*>(data);
  while (size_bytes > 0) {
    const ssize_t written = ::write(fd_, bytes, size_bytes);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return WriteError(written < 0 ? std::strerror(errno) : "no progress");
    bytes += written;
    size_bytes -= static_cast<size_t>(written);
  }
  return Status::Ok();
}

Status OutputFile::WriteAt(uint64_t offset_bytes, const void* data, size_t size_bytes) {
  if (!seekable()) return Error(ErrorCode::kUnsupported, path_ + " is not a regular file; this output is written out of order and needs one");
  if (fd_ < 0) return WriteError("the file is closed");
  const char* bytes = static_cast<const char*>(data);
  while (size_bytes > 0) {
    const ssize_t written = ::pwrite(fd_, bytes, size_bytes, static_cast<off_t>(offset_bytes));
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return WriteError(written < 0 ? std::strerror(errno) : "no progress");
    bytes += written;
    offset_bytes += static_cast<uint64_t>(written);
    size_bytes -= static_cast<size_t>(written);
  }
  return Status::Ok();
}

Status OutputFile::Truncate(uint64_t size_bytes) {
  if (!seekable()) return Error(ErrorCode::kUnsupported, path_ + " is not a regular file");
  if (::ftruncate(fd_, static_cast<off_t>(size_bytes)) != 0) return WriteError(std::strerror(errno));
  return Status::Ok();
}

Status OutputFile::Commit() {
  if (fd_ < 0) return WriteError("the file is closed");
  // fsync before the rename: after a crash the name points at the whole file or the old one.
  if (seekable() && ::fsync(fd_) != 0) return WriteError(std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0 && errno != EINTR) return WriteError(std::strerror(errno));
  if (seekable()) {
    if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
      return Error(ErrorCode::kIo, "cannot rename " + temp_path_ + " to " + path_ + ": " + std::strerror(errno));
    }
    temp_path_.clear();
    ReleaseSlot(slot_);
    slot_ = -1;
  }
  return Status::Ok();
}

}  // namespace kiln
