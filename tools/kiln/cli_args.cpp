#include "cli_args.h"

#include <cerrno>
#include <cstdlib>

namespace kiln::cli {

namespace {

// llama.cpp's short flags, for the commands whose long flag they stand for (a command that
// declares a short flag itself, as `kiln bench -p` does, keeps its own meaning).
const std::map<std::string, std::string> kShortFlags = {
    {"-p", "--prompt"}, {"-f", "--prompt-file"}, {"-n", "--max-tokens"}, {"-c", "--ctx"}, {"-t", "--threads"}};

}  // namespace

Result<Args> Args::Parse(int argc, char** argv, const std::set<std::string>& value_flags,
                         const std::set<std::string>& switches) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!value_flags.count(arg) && !switches.count(arg)) {
      if (auto it = kShortFlags.find(arg); it != kShortFlags.end() && value_flags.count(it->second)) {
        arg = it->second;
      } else if (arg == "-m" && i + 1 < argc) {  // the model, as llama.cpp names it
        args.positionals_.push_back(argv[++i]);
        continue;
      } else if (arg == "-ngl" && value_flags.count("--device")) {
        // llama.cpp's GPU layer count: kiln places a model whole, so any layers mean the GPU.
        if (i + 1 >= argc) return Error(ErrorCode::kInvalidArgument, "-ngl needs a value");
        const std::string layers = argv[++i];
        if (layers.empty() || layers.find_first_not_of("0123456789") != std::string::npos) {
          return Error(ErrorCode::kInvalidArgument, "-ngl expects a layer count, got '" + layers + "'");
        }
        args.values_["--device"] = layers.find_first_not_of('0') == std::string::npos ? "cpu" : "cuda";
        continue;
      }
    }
    // "-" alone is a positional (standard input); "-o" and "--flag" are options.
    if (arg.size() > 1 && arg[0] == '-' && !(arg[1] >= '0' && arg[1] <= '9')) {
      std::string value;
      bool has_inline_value = false;
      if (size_t eq = arg.find('='); eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_inline_value = true;
      }
      if (value_flags.count(arg)) {
        if (!has_inline_value) {
          if (i + 1 >= argc) return Error(ErrorCode::kInvalidArgument, arg + " needs a value");
          value = argv[++i];
        }
        args.values_[arg] = value;
      } else if (switches.count(arg) && !has_inline_value) {
        args.switches_.insert(arg);
      } else {
        return Error(ErrorCode::kInvalidArgument, "unknown option " + arg);
      }
    } else {
      args.positionals_.push_back(arg);
    }
  }
  return args;
}

std::string Args::Get(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second;
}

Result<int64_t> Args::GetInt(const std::string& flag, int64_t fallback, int64_t min, int64_t max) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || errno != 0 || value < min || value > max) {
    return Error(ErrorCode::kInvalidArgument, flag + " expects an integer in [" + std::to_string(min) + ", " +
                                                  std::to_string(max) + "], got '" + it->second + "'");
  }
  return static_cast<int64_t>(value);
}

Result<std::vector<int32_t>> ParseTokenList(const std::string& text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t next = text.find_first_of(", ", pos);
    if (next == std::string::npos) next = text.size();
    const std::string item = text.substr(pos, next - pos);
    if (!item.empty()) {
      errno = 0;
      char* end = nullptr;
      const long long value = std::strtoll(item.c_str(), &end, 10);
      if (*end != '\0' || errno != 0 || value < 0 || value > INT32_MAX) {
        return Error(ErrorCode::kInvalidArgument, "token list entry '" + item + "' is not a non-negative integer id");
      }
      ids.push_back(static_cast<int32_t>(value));
    }
    pos = next + 1;
  }
  if (ids.empty()) return Error(ErrorCode::kInvalidArgument, "the token list is empty");
  return ids;
}

}  // namespace kiln::cli
