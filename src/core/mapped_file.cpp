#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kiln {

namespace {
Error OpenError(const std::string& path) {
  const int err = errno;
  return Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
               "cannot open " + path + ": " + std::strerror(err));
}
}  // namespace

Result<MappedFile> MappedFile::Open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; fstat refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return OpenError(path);
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return Error(ErrorCode::kIo, path + " is not a regular file");
  }
  MappedFile file;
  file.path_ = path;
  file.size_bytes_ = static_cast<size_t>(info.st_size);
  if (file.size_bytes_ > 0) {
    void* address = ::mmap(nullptr, file.size_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return Error(ErrorCode::kIo, "cannot mmap " + path + ": " + std::strerror(err));
    }
    file.data_ = static_cast<const uint8_t*>(address);
  }
  ::close(fd);  // the mapping keeps the file alive
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_bytes_);
    data_ = other.data_;
    size_bytes_ = other.size_bytes_;
    path_ = std::move(other.path_);
    other.data_ = nullptr;
    other.size_bytes_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_bytes_);
}

Result<std::string> ReadTextFile(const std::string& path) {
  // Only regular files: a FIFO or a device named as config.json must not block or stream forever.
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return OpenError(path);
  if (!S_ISREG(info.st_mode)) return Error(ErrorCode::kIo, path + " is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    errno = errno ? errno : ENOENT;
    return OpenError(path);
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return Error(ErrorCode::kIo, "cannot read " + path);
  return contents.str();
}

}  // namespace kiln
