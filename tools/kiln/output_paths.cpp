#include "output_paths.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "io/output_file.h"

namespace kiln::cli {

Status PrepareOutput(const char* command, const std::string& output, const std::vector<std::string>& inputs,
                     bool needs_regular_file) {
  TRY(CheckOutputPath(output, inputs));
  struct stat info {};
  if (needs_regular_file && ::stat(output.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
    return Error(ErrorCode::kInvalidArgument, output + " is not a regular file; this output is written out of order and needs one");
  }
  for (const std::string& stale : RemoveStaleTemporaries(output)) {
    std::fprintf(stderr, "kiln %s: removed %s, left by an interrupted write (its process is gone)\n", command, stale.c_str());
  }
  return Status::Ok();
}

Status WriteTextFile(const std::string& path, const std::string& text) {
  TRY_ASSIGN(OutputFile out, OutputFile::Create(path));
  TRY(out.Write(text.data(), text.size()));
  return out.Commit();
}

namespace {
int g_stdout_errno = 0;  // the first failed flush's errno
}  // namespace

bool StandardOutputFailed() {
  errno = 0;
  if (std::fflush(stdout) != 0 && g_stdout_errno == 0) g_stdout_errno = errno;
  return std::ferror(stdout) != 0 || g_stdout_errno != 0;
}

Status FlushStandardOutput() {
  if (!StandardOutputFailed()) return Status::Ok();
  std::clearerr(stdout);
  const std::string reason = g_stdout_errno != 0 ? std::strerror(g_stdout_errno) : "a write failed";
  return Error(ErrorCode::kIo, "cannot write standard output: " + reason);
}

}  // namespace kiln::cli
