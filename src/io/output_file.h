// Files kiln writes at a path the user named (compile -o, logits --out, run --save-logits,
// bench --json, ...): one way to write them, so that an output never destroys anything.
//
//   TRY(CheckOutputPath(out, {model_path}));             // before any work
//   TRY_ASSIGN(OutputFile file, OutputFile::Create(out));
//   TRY(file.Write(bytes.data(), bytes.size()));
//   TRY(file.Commit());                                  // the file appears only now
//
// A regular file (or a path that does not exist yet) is written to a temporary file in the same
// directory, named "<path>.tmp.<pid>", and renamed over the path by Commit(): a failure or an
// interruption (SIGINT, SIGTERM, SIGHUP: the handler removes the temporary) leaves the old file
// as it was. A special file (character device such as /dev/null or /dev/stdout, FIFO, socket) is
// opened and written in place, never replaced by a regular file. Every write error (ENOSPC,
// EPIPE, ...) is returned as kIo naming the path and the reason.
//
// SIGKILL cannot be handled: the temporary it leaves embeds the dead writer's pid, and
// RemoveStaleTemporaries(path), called before the next write to the same path, removes those
// whose process is gone.
//
// Not thread-safe; at most kMaxOpenOutputs uncommitted temporaries per process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace kiln {

inline constexpr int kMaxOpenOutputs = 4;

// kInvalidArgument when `output` is one of `inputs` (the same file, also through links) or lies
// inside an input that is a directory, e.g. "kiln compile CKPT -o CKPT/model.safetensors".
// Empty inputs are skipped; inputs that do not exist cannot be overwritten and are skipped.
Status CheckOutputPath(const std::string& output, const std::vector<std::string>& inputs);

// Removes "<path>.tmp.<pid>" files left by a writer whose process no longer exists and returns
// their names (empty when there were none). Temporaries of live processes are left alone.
std::vector<std::string> RemoveStaleTemporaries(const std::string& path);

class OutputFile {
 public:
  // kIo when the temporary (or the special file) cannot be opened; kInvalidArgument when `path`
  // is a directory.
  static Result<OutputFile> Create(const std::string& path);

  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&& other) = delete;
  OutputFile(const OutputFile&) = delete;
  ~OutputFile();  // an uncommitted temporary is removed

  // False for special files: they are written front to back, WriteAt is refused.
  bool seekable() const { return !temp_path_.empty(); }
  const std::string& path() const { return path_; }

  Status Write(const void* data, size_t size_bytes);
  // Writes at an absolute offset (regular files only; kUnsupported otherwise).
  Status WriteAt(uint64_t offset_bytes, const void* data, size_t size_bytes);
  // Regular files: the length is exactly `size_bytes` (extends with zeros or cuts).
  Status Truncate(uint64_t size_bytes);
  // Flushes (fsync for a regular file), closes and renames the temporary over the path.
  Status Commit();

 private:
  OutputFile(std::string path, std::string temp_path, int fd, int slot);
  Status WriteError(const char* reason) const;

  std::string path_;
  std::string temp_path_;  // empty for special files
  int fd_ = -1;
  int slot_ = -1;  // the interrupt handler's entry for temp_path_
};

}  // namespace kiln
