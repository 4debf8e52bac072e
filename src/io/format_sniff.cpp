#include "io/format_sniff.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>

namespace kiln {

namespace {

constexpr size_t kSniffBytes = 4096;  // enough to find the first non-blank character of a JSON file

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

SniffedPath SniffPath(const std::string& path) {
  SniffedPath sniffed;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return {FileFormat::kMissing, ""};
  if (S_ISDIR(info.st_mode)) return {FileFormat::kDirectory, ""};
  if (!S_ISREG(info.st_mode)) return {FileFormat::kSpecial, ""};
  if (info.st_size == 0) return {FileFormat::kEmpty, ""};
  // O_NONBLOCK: were the file swapped for a FIFO since the stat, opening it must not wait.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return {FileFormat::kUnknown, ""};
  char bytes[kSniffBytes];
  ssize_t size = 0;
  struct stat opened {};
  if (::fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode)) size = ::read(fd, bytes, sizeof(bytes));
  ::close(fd);
  if (size <= 0) return {FileFormat::kUnknown, ""};
  const size_t n = static_cast<size_t>(size);
  for (size_t i = 0; i < std::min<size_t>(8, n); ++i) {
    sniffed.first_bytes += (bytes[i] >= 32 && bytes[i] < 127) ? bytes[i] : '.';
  }
  if (n >= 8 && std::memcmp(bytes, kKilnMagic, 8) == 0) {
    sniffed.format = FileFormat::kKiln;
  } else if (n >= 4 && std::memcmp(bytes, "GGUF", 4) == 0) {
    sniffed.format = FileFormat::kGguf;
  } else if (uint64_t header_bytes = 0; n >= 9 && (std::memcpy(&header_bytes, bytes, 8), bytes[8] == '{') && header_bytes >= 2 &&
                                        header_bytes <= static_cast<uint64_t>(info.st_size) - 8) {
    sniffed.format = FileFormat::kSafetensors;  // little-endian length: x86-64 and aarch64 hosts
  } else {
    size_t i = 0;
    while (i < n && IsBlank(bytes[i])) ++i;
    sniffed.format = i < n && (bytes[i] == '{' || bytes[i] == '[') ? FileFormat::kJson : FileFormat::kUnknown;
  }
  return sniffed;
}

const char* FileFormatName(FileFormat format) {
  switch (format) {
    case FileFormat::kMissing: return "nothing (no such file or directory)";
    case FileFormat::kDirectory: return "a directory";
    case FileFormat::kSpecial: return "not a regular file (a FIFO, device or socket)";
    case FileFormat::kEmpty: return "an empty file";
    case FileFormat::kKiln: return "a compiled .kiln artifact";
    case FileFormat::kGguf: return "a GGUF file";
    case FileFormat::kSafetensors: return "a safetensors weights file";
    case FileFormat::kJson: return "a JSON file";
    case FileFormat::kUnknown: return "a file of unknown format";
  }
  return "a file of unknown format";
}

bool IsModelInput(FileFormat format) {
  return format == FileFormat::kDirectory || format == FileFormat::kKiln || format == FileFormat::kGguf ||
         format == FileFormat::kJson;
}

Error ModelInputError(const std::string& path, const SniffedPath& sniffed) {
  constexpr const char* kExpected = "expected a checkpoint directory, a .kiln artifact, a GGUF file or a config.json";
  switch (sniffed.format) {
    case FileFormat::kMissing:
      return Error(ErrorCode::kNotFound, "model path " + path + " does not exist (" + kExpected + ")");
    case FileFormat::kSafetensors: {
      const std::string directory = std::filesystem::path(path).parent_path().string();
      return Error(ErrorCode::kUnsupported, path + " is a safetensors weights file; kiln loads the checkpoint directory that holds it "
                                                   "with its config.json and tokenizer: pass " + (directory.empty() ? "." : directory));
    }
    case FileFormat::kSpecial:
      return Error(ErrorCode::kInvalidArgument, "model path " + path + " is " + FileFormatName(sniffed.format) +
                                                    "; kiln reads models only from regular files and directories");
    case FileFormat::kEmpty:
      return Error(ErrorCode::kMalformed, "model path " + path + " is an empty file (" + kExpected + ")");
    default:
      break;
  }
  if (path.ends_with(".kiln")) {
    return Error(ErrorCode::kMalformed, path + " is named like a .kiln artifact but does not start with kiln's magic bytes "
                                               "\"KILNAOT\" (found \"" + sniffed.first_bytes +
                                               "\"): the file is damaged or not an artifact; recompile it with `kiln compile`");
  }
  return Error(ErrorCode::kMalformed, "model path " + path + " is " + FileFormatName(sniffed.format) + ", starting \"" +
                                          sniffed.first_bytes + "\" (" + kExpected + ")");
}

}  // namespace kiln
