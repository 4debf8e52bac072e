// kiln bench MODEL [-p 512[,..]] [-g 128[,..]] [-r 5] [--seed S] [--json FILE]
// Prompt processing (pp) and text generation (tg) throughput, as llama-bench measures them:
// each test runs once as a warm-up, then -r times; the table shows the median and the spread
// (min and max). Prompts are synthetic, drawn from --seed, so runs are comparable.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli_args.h"
#include "commands.h"
#include "generation_flags.h"
#include "model_options.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln bench MODEL [-p N[,N..]] [-g N[,N..]] [-r N] [--seed S] [--json FILE] [options]\n"
    "  -p   prompt lengths to prefill (pp tests, default 512)\n"
    "  -g   tokens to generate after a one-token prompt (tg tests, default 128)\n"
    "  -r   repetitions after one warm-up run (default 5)\n"
    "  --json FILE  every repetition's numbers as JSON\n"
    "  --decode-depth N  decode steps in flight on a backend that samples on the device (default 4; 0 = host)\n"
    "  --ctx N (default: the largest test)  --chunk N  --threads N  --num-layers N\n";

struct Test {
  std::string name;  // "pp512", "tg128"
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  std::vector<double> seconds;
  std::vector<double> tokens_per_second;
};

Result<std::vector<int64_t>> ParseCounts(const Args& args, const std::string& flag, int64_t fallback) {
  if (!args.Has(flag)) return std::vector<int64_t>{fallback};
  std::vector<int64_t> counts;
  auto ids = ParseTokenList(args.Get(flag));  // the same "N,N" syntax
  if (!ids) return Error(ErrorCode::kInvalidArgument, flag + " expects a list of token counts, got '" + args.Get(flag) + "'");
  for (int32_t n : *ids) {
    if (n > 0) counts.push_back(n);
  }
  return counts;
}

// BOS (id 2, Gemma's) then ids drawn uniformly from [3, vocab).
std::vector<int32_t> SyntheticPrompt(int64_t length, int64_t vocab, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::vector<int32_t> ids(static_cast<size_t>(length));
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = i == 0 ? 2 : static_cast<int32_t>(3 + engine() % static_cast<uint64_t>(vocab - 3));
  }
  return ids;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n == 0 ? 0 : (n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2);
}

Status WriteJson(const std::string& path, const nlohmann::ordered_json& document) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary);
    out << document.dump(2) << "\n";
    if (!out) return Error(ErrorCode::kIo, "cannot write " + temporary);
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) return Error(ErrorCode::kIo, "cannot rename " + temporary + " to " + path + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

int RunBench(int argc, char** argv) {
  std::set<std::string> value_flags = kModelValueFlags;
  value_flags.insert({"-p", "-g", "-r", "--seed", "--json", "--decode-depth"});
  std::set<std::string> switches = kModelSwitches;
  switches.insert("--help");
  auto args = Args::Parse(argc, argv, value_flags, switches);
  if (!args) return ReportError("bench", args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  auto prompts = ParseCounts(*args, "-p", 512);
  if (!prompts) return ReportError("bench", prompts.error());
  auto generations = ParseCounts(*args, "-g", 128);
  if (!generations) return ReportError("bench", generations.error());
  auto repetitions = args->GetInt("-r", 5, 1, 10000);
  if (!repetitions) return ReportError("bench", repetitions.error());
  auto seed = args->GetInt("--seed", 0, 0, INT64_MAX);
  if (!seed) return ReportError("bench", seed.error());
  auto depth = args->GetInt("--decode-depth", 4, 0, PlacedModel::kMaxDecodeInFlight);
  if (!depth) return ReportError("bench", depth.error());
  if (args->positionals().size() > 1) {
    std::fprintf(stderr, "kiln bench: expected one MODEL\n%s", kUsage);
    return 2;
  }
  auto path = ResolveModelPath(*args);
  if (!path) return ReportError("bench", path.error());
  int64_t needed = 1;
  for (int64_t p : *prompts) needed = std::max(needed, p);
  for (int64_t g : *generations) needed = std::max(needed, g + 1);
  auto load_options = ModelOptionsFromArgs(*args, needed);
  if (!load_options) return ReportError("bench", load_options.error());
  if (needed > load_options->max_context) {
    return ReportError("bench", Error(ErrorCode::kInvalidArgument, "the largest test needs " + std::to_string(needed) +
                                                                       " positions, more than --ctx " +
                                                                       std::to_string(load_options->max_context)));
  }

  const auto load_start = std::chrono::steady_clock::now();
  auto model = LoadWithProgress(*path, *load_options);
  if (!model) return ReportError("bench", model.error());
  auto session = (*model)->NewSession();
  if (!session) return ReportError("bench", session.error());
  const double prepare_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const int threads = load_options->num_threads > 0 ? load_options->num_threads
                                                    : static_cast<int>(std::thread::hardware_concurrency());

  std::vector<Test> tests;
  for (int64_t p : *prompts) tests.push_back({"pp" + std::to_string(p), p, 0, {}, {}});
  for (int64_t g : *generations) tests.push_back({"tg" + std::to_string(g), 1, g, {}, {}});
  Generator generator(*session, nullptr);
  for (Test& test : tests) {
    const std::vector<int32_t> prompt =
        SyntheticPrompt(test.prompt_tokens, session->vocab_size(), static_cast<uint64_t>(*seed));
    GenerateOptions options;
    options.max_new_tokens = std::max<int64_t>(test.generated_tokens, 1);
    options.ignore_eos = true;
    options.prefill_chunk = load_options->max_tokens;
    options.decode_depth = static_cast<int>(*depth);
    for (int64_t run = 0; run <= *repetitions; ++run) {  // run 0 is the warm-up
      generator.Reset();
      auto result = generator.Generate(prompt, options);
      if (!result) return ReportError("bench", result.error());
      // pp: the prefill alone; tg: every generated token, the first one's step included.
      const double seconds = test.generated_tokens == 0 ? result->prefill_seconds
                                                        : result->first_token_seconds + result->decode_seconds;
      const int64_t tokens = test.generated_tokens == 0 ? test.prompt_tokens : static_cast<int64_t>(result->tokens.size());
      if (run == 0) continue;
      test.seconds.push_back(seconds);
      test.tokens_per_second.push_back(seconds > 0 ? static_cast<double>(tokens) / seconds : 0);
    }
  }

  const int64_t peak = PeakMemoryBytes();
  std::printf("model    %s\nbackend  %s, %d threads\nprepare  %.2f s (load, compile, plan check)\npeak     %s\n\n",
              path->c_str(), (*model)->program().target.c_str(), threads, prepare_seconds, FormatBytes(peak).c_str());
  std::printf("| %-8s | %4s | %12s | %12s | %12s |\n", "test", "reps", "t/s median", "min", "max");
  std::printf("| %-8s | %4s | %12s | %12s | %12s |\n", "--------", "---:", "-----------:", "-----------:",
              "-----------:");
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const Test& test : tests) {
    const auto [low, high] = std::minmax_element(test.tokens_per_second.begin(), test.tokens_per_second.end());
    const double median = Median(test.tokens_per_second);
    std::printf("| %-8s | %4zu | %12.2f | %12.2f | %12.2f |\n", test.name.c_str(), test.tokens_per_second.size(), median,
                *low, *high);
    results.push_back({{"test", test.name},
                       {"prompt_tokens", test.prompt_tokens},
                       {"generated_tokens", test.generated_tokens},
                       {"repetitions", test.tokens_per_second.size()},
                       {"tokens_per_second", {{"median", median}, {"min", *low}, {"max", *high}, {"values", test.tokens_per_second}}},
                       {"seconds", test.seconds}});
  }
  if (args->Has("--json")) {
    nlohmann::ordered_json document = {{"model", *path},
                                       {"backend", (*model)->program().target},
                                       {"threads", threads},
                                       {"context", load_options->max_context},
                                       {"chunk", load_options->max_tokens},
                                       {"seed", *seed},
                                       {"warmup_runs", 1},
                                       {"prepare_seconds", prepare_seconds},
                                       {"peak_memory_bytes", peak},
                                       {"results", results}};
    Status written = WriteJson(args->Get("--json"), document);
    if (!written.ok()) return ReportError("bench", written.error());
  }
  return 0;
}

}  // namespace kiln::cli
