// Runs the kiln binary as a user would, for tests that assert exit codes and messages.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace kiln::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and, unless quiet, stderr
};

// Runs `KILN_BINARY arguments`; `input` is piped to standard input (empty: /dev/null).
inline CommandResult Kiln(const std::string& arguments, const std::string& input = "", bool quiet = false) {
  std::string command = std::string(KILN_BINARY) + " " + arguments + (quiet ? " 2>/dev/null" : " 2>&1");
  if (!input.empty()) {
    const std::string path = (std::filesystem::temp_directory_path() / "kiln_cli_input.txt").string();
    std::ofstream(path) << input;
    command += " < " + path;
  } else {
    command += " < /dev/null";
  }
  CommandResult run;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return run;
  std::array<char, 4096> buffer;
  size_t count;
  while ((count = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) run.output.append(buffer.data(), count);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace kiln::testing
