// The files a kiln command writes, and its standard output, checked the same way everywhere
// (io/output_file.h does the writing).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace kiln::cli {

// Before any work: refuses an output that is an input or inside an input directory
// (kInvalidArgument, exit 2), then removes temporaries a killed writer left at that path and says
// so on stderr ("kiln <command>: removed <file>, left by an interrupted write").
// `needs_regular_file`: the output is written out of order (a .kiln), so a device, FIFO or
// standard output is refused here rather than after the work.
Status PrepareOutput(const char* command, const std::string& output, const std::vector<std::string>& inputs,
                     bool needs_regular_file = false);

// `text` written to `path` as an OutputFile.
Status WriteTextFile(const std::string& path, const std::string& text);

// Flushes standard output and returns true when it (or an earlier write) failed, keeping the
// reason for FlushStandardOutput. For commands that stop early when their output is gone.
bool StandardOutputFailed();

// Flushes standard output; kIo naming the reason when it (or an earlier write) failed, e.g.
// "cannot write standard output: No space left on device".
Status FlushStandardOutput();

}  // namespace kiln::cli
