// A small command-line parser for kiln's subcommands: `--flag VALUE`, `--flag=VALUE`, boolean
// `--switch`, and positionals. llama.cpp's short flags work where their long flag does: -m MODEL,
// -p (--prompt), -f (--prompt-file), -n (--max-tokens), -c (--ctx), -t (--threads), and -ngl N
// (--device cuda when N > 0, cpu when 0: kiln places a model whole). Unknown flags and missing or malformed values are errors that
// name the flag; the subcommand prints them and exits with status 2.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

namespace kiln::cli {

class Args {
 public:
  // value_flags take a value; switches do not.
  static Result<Args> Parse(int argc, char** argv, const std::set<std::string>& value_flags,
                            const std::set<std::string>& switches);

  bool Has(const std::string& flag) const { return values_.count(flag) || switches_.count(flag); }
  std::string Get(const std::string& flag, const std::string& fallback = "") const;
  Result<int64_t> GetInt(const std::string& flag, int64_t fallback, int64_t min, int64_t max) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> switches_;
  std::vector<std::string> positionals_;
};

// "2,651,9" or "2 651 9" -> ids; kInvalidArgument naming the bad entry.
Result<std::vector<int32_t>> ParseTokenList(const std::string& text);

}  // namespace kiln::cli
