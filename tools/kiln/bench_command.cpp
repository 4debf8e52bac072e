// kiln bench [MODEL] [-p 512[,..]] [-g 128[,..]] [-r 5] [--seed S] [--json FILE]
// Prompt processing (pp) and text generation (tg) throughput, as llama-bench measures them:
// each test runs once as a warm-up, then -r times; the table shows the median and the spread
// (min and max). Prompts are synthetic, drawn from --seed, so runs are comparable. Each row is
// printed when its test is measured (a line on a terminal's stderr says which run is going on);
// Ctrl-C stops measuring, keeps the rows measured (the test in progress with the repetitions it
// finished), writes --json with them and exits with status 130.
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
#include "output_paths.h"
#include "progress.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln bench [MODEL] [-p N[,N..]] [-g N[,N..]] [-r N] [--seed S] [--json FILE] [options]\n"
    "  MODEL: a checkpoint directory or .kiln file (default: the bundled models/brown-gemma4)\n"
    "  -p   prompt lengths to prefill (pp tests, default 512)\n"
    "  -g   tokens to generate after a one-token prompt (tg tests, default 128)\n"
    "  -r   repetitions after one warm-up run (default 5)\n"
    "  --json FILE  every repetition's numbers as JSON\n"
    "  --decode-depth N  decode steps in flight on a backend that samples on the device (default 4; 0 = host)\n"
    "  --parallel N[,N..]  batched decoding instead (llama-batched-bench style): for each N, N sequences\n"
    "               prefill a -p prompt each (packed into steps of --chunk tokens), then decode -g tokens\n"
    "               together; reports time to first token, aggregate and per-sequence generation tok/s\n"
    "  --ctx N (default: the largest test)  --chunk N  --threads N  --num-layers N\n"
    "  --spec-type ngram|draft|mtp  --draft MODEL  --draft-max N  tg tests with speculative decoding\n"
    "               (docs/speculative.md); the table adds the share of drafted tokens accepted\n"
    "  Rows are printed as they are measured; Ctrl-C stops, keeps them (and --json) and exits with 130.\n";

struct Test {
  std::string name;  // "pp512", "tg128"
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  std::vector<double> seconds;
  std::vector<double> tokens_per_second;
  int64_t draft_tokens = 0, accepted_draft_tokens = 0;  // over the measured repetitions
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
  return WriteTextFile(path, document.dump(2) + "\n");
}

// "bench pp512: warm-up", "bench pp512: run 3/5" (the progress line).
std::string RunProgressText(const std::string& test, int64_t run, int64_t repetitions) {
  return "bench " + test + ": " + (run == 0 ? "warm-up" : "run " + std::to_string(run) + "/" + std::to_string(repetitions));
}

// After Ctrl-C, on stderr below the table.
void ReportStopped(size_t measured, size_t tests) {
  std::fprintf(stderr, "kiln bench: stopped by the user; %zu of %zu tests measured\n", measured, tests);
}

// One batched run: `parallel` sequences prefill `prompt` tokens each, packed into steps of up to
// Tmax tokens (oldest first, like the scheduler), then decode `generate` tokens each, all
// sequences in every step, greedily on the host.
struct BatchedRun {
  double prefill_seconds = 0;              // until the last prompt is in
  std::vector<double> first_token_seconds;  // per sequence
  double decode_seconds = 0;                // the decode steps
  bool cancelled = false;                   // stopped by `cancel`: not a measurement
};

Result<BatchedRun> RunBatched(Runner& runner, int64_t parallel, int64_t prompt_length, int64_t generate, uint64_t seed,
                              const std::atomic<bool>& cancel) {
  using Clock = std::chrono::steady_clock;
  const int64_t vocab = runner.vocab_size(), tmax = runner.program().max_tokens;
  std::vector<std::unique_ptr<Sequence>> sequences;
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t s = 0; s < parallel; ++s) {
    sequences.push_back(std::make_unique<Sequence>(runner.pool()));
    prompts.push_back(SyntheticPrompt(prompt_length, vocab, seed + static_cast<uint64_t>(s)));
  }
  std::vector<float> logits(static_cast<size_t>(parallel * vocab));
  std::vector<int32_t> next(static_cast<size_t>(parallel), 0);
  std::vector<BatchEntry> batch;
  BatchedRun run;
  const auto start = Clock::now();
  std::vector<int64_t> fed(static_cast<size_t>(parallel), 0);
  for (int64_t done = 0; done < parallel;) {
    if (cancel) {
      run.cancelled = true;
      return run;
    }
    batch.clear();
    std::vector<int64_t> owner;
    int64_t budget = tmax;
    for (int64_t s = 0; s < parallel && budget > 0; ++s) {
      const int64_t left = prompt_length - fed[static_cast<size_t>(s)];
      if (left == 0) continue;
      const int64_t take = std::min(left, budget);
      batch.push_back({sequences[static_cast<size_t>(s)].get(),
                       std::span<const int32_t>(prompts[static_cast<size_t>(s)].data() + fed[static_cast<size_t>(s)], static_cast<size_t>(take))});
      owner.push_back(s);
      budget -= take;
    }
    TRY(runner.Run(batch, std::span<float>(logits.data(), batch.size() * static_cast<size_t>(vocab))));
    for (size_t b = 0; b < batch.size(); ++b) {
      const size_t s = static_cast<size_t>(owner[b]);
      fed[s] += static_cast<int64_t>(batch[b].tokens.size());
      if (fed[s] < prompt_length) continue;
      next[s] = ArgMax(std::span<const float>(logits.data() + b * static_cast<size_t>(vocab), static_cast<size_t>(vocab)));
      run.first_token_seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      ++done;
    }
  }
  run.prefill_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const auto decode_start = Clock::now();
  for (int64_t step = 1; step < generate; ++step) {  // the first token came from the prefill
    if (cancel) {
      run.cancelled = true;
      return run;
    }
    batch.clear();
    for (int64_t s = 0; s < parallel; ++s) batch.push_back({sequences[static_cast<size_t>(s)].get(), std::span<const int32_t>(&next[static_cast<size_t>(s)], 1)});
    TRY(runner.Run(batch, logits));
    for (int64_t s = 0; s < parallel; ++s) {
      next[static_cast<size_t>(s)] = ArgMax(std::span<const float>(logits.data() + s * vocab, static_cast<size_t>(vocab)));
    }
  }
  run.decode_seconds = std::chrono::duration<double>(Clock::now() - decode_start).count();
  return run;
}

// kiln bench --parallel: the model placed once for the largest N, each N run -r times after a
// warm-up; medians.
int RunParallelBench(const Args& args, const std::string& path, LoadOptions load_options, const std::vector<int64_t>& parallels,
                     int64_t prompt_length, int64_t generate, int64_t repetitions, uint64_t seed) {
  int64_t largest = 1;
  for (int64_t p : parallels) largest = std::max(largest, p);
  load_options.max_sequences = largest;
  load_options.max_tokens = std::max(load_options.max_tokens, largest);
  if (prompt_length + generate > load_options.max_context) {
    return ReportError("bench", Error(ErrorCode::kInvalidArgument, "-p + -g need " + std::to_string(prompt_length + generate) +
                                                                       " positions, more than --ctx " + std::to_string(load_options.max_context)));
  }
  auto model = LoadWithProgress(path, load_options);
  if (!model) return ReportError("bench", model.error());
  if ((*model)->program().max_sequences < largest) {
    return ReportError("bench", Error(ErrorCode::kInvalidArgument, path + " was compiled for " + std::to_string((*model)->program().max_sequences) +
                                                                       " sequences per step; recompile with --parallel " + std::to_string(largest)));
  }
  auto runner = (*model)->NewRunner();
  if (!runner) return ReportError("bench", runner.error());
  std::printf("model    %s\nbackend  %s\nprompt   %lld tokens per sequence, %lld generated, chunk %lld, context %lld\n\n", path.c_str(),
              (*model)->program().target.c_str(), static_cast<long long>(prompt_length), static_cast<long long>(generate),
              static_cast<long long>((*model)->program().max_tokens), static_cast<long long>((*model)->program().max_context));
  std::printf("| %8s | %10s | %12s | %14s | %14s |\n", "parallel", "pp t/s", "ttft median", "tg t/s total", "tg t/s per seq");
  std::printf("| %8s | %10s | %12s | %14s | %14s |\n", "-------:", "---------:", "-----------:", "-------------:", "-------------:");
  std::fflush(stdout);
  Interrupts& interrupts = InstallInterruptHandler();
  interrupts.generating = true;
  TerminalLine line;
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (int64_t parallel : parallels) {
    std::vector<double> pp, ttft, tg;
    for (int64_t rep = 0; rep <= repetitions && !interrupts.cancel; ++rep) {
      line.Show(RunProgressText("parallel " + std::to_string(parallel), rep, repetitions));
      auto run = RunBatched(**runner, parallel, prompt_length, generate, seed, interrupts.cancel);
      if (!run) {
        line.Clear();
        return ReportError("bench", run.error());
      }
      if (run->cancelled || rep == 0) continue;  // stopped, or the warm-up
      pp.push_back(static_cast<double>(parallel * prompt_length) / run->prefill_seconds);
      ttft.push_back(Median(run->first_token_seconds));
      tg.push_back(run->decode_seconds > 0 ? static_cast<double>(parallel * (generate - 1)) / run->decode_seconds : 0);
    }
    line.Clear();
    if (pp.empty()) break;  // stopped before a measured repetition
    const double tg_total = Median(tg);
    std::printf("| %8lld | %10.1f | %10.3f s | %14.1f | %14.1f |\n", static_cast<long long>(parallel), Median(pp), Median(ttft), tg_total,
                tg_total / static_cast<double>(parallel));
    results.push_back({{"parallel", parallel}, {"prompt_tokens_per_second", Median(pp)}, {"time_to_first_token_seconds", Median(ttft)},
                       {"generation_tokens_per_second", tg_total}, {"generation_tokens_per_second_per_sequence", tg_total / static_cast<double>(parallel)},
                       {"values", {{"pp", pp}, {"ttft", ttft}, {"tg", tg}}}});
    std::fflush(stdout);
    if (interrupts.cancel) break;
  }
  interrupts.generating = false;
  if (interrupts.cancel) ReportStopped(results.size(), parallels.size());
  if (args.Has("--json")) {
    nlohmann::ordered_json document = {{"model", path}, {"backend", (*model)->program().target}, {"prompt_tokens", prompt_length},
                                       {"generated_tokens", generate}, {"chunk", (*model)->program().max_tokens},
                                       {"context", (*model)->program().max_context}, {"repetitions", repetitions},
                                       {"interrupted", interrupts.cancel.load()}, {"results", results}};
    Status written = WriteJson(args.Get("--json"), document);
    if (!written.ok()) return ReportError("bench", written.error());
  }
  return interrupts.cancel ? kInterruptedExitStatus : 0;
}

}  // namespace

int RunBench(int argc, char** argv) {
  // --parallel takes a list here, not the one sequence bound the model flags parse.
  std::vector<char*> arguments(argv, argv + argc);
  auto parallel_flags = TakeRepeatedFlag("--parallel", &arguments);
  if (!parallel_flags) return ReportError("bench", parallel_flags.error());
  std::set<std::string> value_flags = kModelValueFlags;
  value_flags.insert({"-p", "-g", "-r", "--seed", "--json", "--decode-depth", "--spec-type", "--draft-max", "--spec-ngram", "--draft"});
  std::set<std::string> switches = kModelSwitches;
  switches.insert("--help");
  auto args = Args::Parse(static_cast<int>(arguments.size()), arguments.data(), value_flags, switches);
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
  if (args->Has("--json")) {
    Status output = PrepareOutput("bench", args->Get("--json"), {*path, args->Get("--source")});
    if (!output.ok()) return ReportError("bench", output.error());
  }
  if (!parallel_flags->empty()) {
    auto list = ParseTokenList(parallel_flags->back());
    std::vector<int64_t> parallels;
    if (list) {
      for (int32_t n : *list) {
        if (n > 0) parallels.push_back(n);
      }
    }
    if (!list || parallels.empty() || parallels.size() != list->size()) {
      return ReportError("bench", Error(ErrorCode::kInvalidArgument, "--parallel expects a list of sequence counts, got '" +
                                                                         parallel_flags->back() + "'"));
    }
    auto load_options = ModelOptionsFromArgs(*args, prompts->front() + generations->front());
    if (!load_options) return ReportError("bench", load_options.error());
    return RunParallelBench(*args, *path, *load_options, parallels, prompts->front(), generations->front(), *repetitions,
                            static_cast<uint64_t>(*seed));
  }
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
  // Speculative tg tests: the drafter as `kiln run` attaches it (an MTP assistant is compiled in
  // by the load options already).
  auto speculative = SpeculativeOptionsFromArgs(*args);
  if (!speculative) return ReportError("bench", speculative.error());
  GenerateOptions base;
  base.speculative = *speculative;
  std::unique_ptr<Drafter> drafter;
  if (speculative->enabled()) {
    auto text = LoadModelText(**model);
    if (!text) return ReportError("bench", text.error());
    auto attached = AttachDrafter(*args, *load_options, **model, *text, base);
    if (!attached) return ReportError("bench", attached.error());
    drafter = std::move(*attached);
  }
  const bool drafts = speculative->enabled();
  const double prepare_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const int threads = load_options->num_threads > 0 ? load_options->num_threads
                                                    : static_cast<int>(std::thread::hardware_concurrency());

  std::vector<Test> tests;
  for (int64_t p : *prompts) tests.push_back({"pp" + std::to_string(p), p, 0, {}, {}});
  for (int64_t g : *generations) tests.push_back({"tg" + std::to_string(g), 1, g, {}, {}});
  std::printf("model    %s\nbackend  %s, %d threads\nprepare  %.2f s (load, compile, plan check)\n\n", path->c_str(),
              (*model)->program().target.c_str(), threads, prepare_seconds);
  std::printf("| %-8s | %4s | %12s | %12s | %12s |%s\n", "test", "reps", "t/s median", "min", "max", drafts ? "   accepted |" : "");
  std::printf("| %-8s | %4s | %12s | %12s | %12s |%s\n", "--------", "---:", "-----------:", "-----------:",
              "-----------:", drafts ? " ----------:|" : "");
  std::fflush(stdout);

  // Each test: a warm-up, then the repetitions; its row as soon as they are done.
  Interrupts& interrupts = InstallInterruptHandler();
  interrupts.generating = true;
  TerminalLine line;
  Generator generator(*session, nullptr);
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (Test& test : tests) {
    const std::vector<int32_t> prompt =
        SyntheticPrompt(test.prompt_tokens, session->vocab_size(), static_cast<uint64_t>(*seed));
    GenerateOptions options = base;
    if (test.generated_tokens == 0) options.speculative = {};  // pp: the prefill alone
    options.max_new_tokens = std::max<int64_t>(test.generated_tokens, 1);
    options.ignore_eos = true;
    options.prefill_chunk = load_options->max_tokens;
    options.decode_depth = static_cast<int>(*depth);
    options.cancel = &interrupts.cancel;
    for (int64_t run = 0; run <= *repetitions && !interrupts.cancel; ++run) {  // run 0 is the warm-up
      line.Show(RunProgressText(test.name, run, *repetitions));
      generator.Reset();
      auto result = generator.Generate(prompt, options);
      if (!result) {
        line.Clear();
        return ReportError("bench", result.error());
      }
      if (result->stop_reason == StopReason::kCancelled) break;  // a partial run is not a measurement
      // pp: the prefill alone; tg: every generated token, the first one's step included.
      const double seconds = test.generated_tokens == 0 ? result->prefill_seconds
                                                        : result->first_token_seconds + result->decode_seconds;
      const int64_t tokens = test.generated_tokens == 0 ? test.prompt_tokens : static_cast<int64_t>(result->tokens.size());
      if (run == 0) continue;
      test.draft_tokens += result->draft_tokens;
      test.accepted_draft_tokens += result->accepted_draft_tokens;
      test.seconds.push_back(seconds);
      test.tokens_per_second.push_back(seconds > 0 ? static_cast<double>(tokens) / seconds : 0);
    }
    line.Clear();
    if (test.tokens_per_second.empty()) break;  // stopped before a measured repetition
    const auto [low, high] = std::minmax_element(test.tokens_per_second.begin(), test.tokens_per_second.end());
    const double median = Median(test.tokens_per_second);
    std::string accepted;
    if (drafts) {
      char cell[32];
      if (test.draft_tokens > 0) {
        std::snprintf(cell, sizeof(cell), " %9.1f%% |", 100.0 * static_cast<double>(test.accepted_draft_tokens) / static_cast<double>(test.draft_tokens));
      } else {
        std::snprintf(cell, sizeof(cell), " %10s |", "-");
      }
      accepted = cell;
    }
    std::printf("| %-8s | %4zu | %12.2f | %12.2f | %12.2f |%s\n", test.name.c_str(), test.tokens_per_second.size(), median,
                *low, *high, accepted.c_str());
    std::fflush(stdout);
    results.push_back({{"test", test.name},
                       {"prompt_tokens", test.prompt_tokens},
                       {"generated_tokens", test.generated_tokens},
                       {"repetitions", test.tokens_per_second.size()},
                       {"tokens_per_second", {{"median", median}, {"min", *low}, {"max", *high}, {"values", test.tokens_per_second}}},
                       {"seconds", test.seconds},
                       {"draft_tokens", test.draft_tokens},
                       {"accepted_draft_tokens", test.accepted_draft_tokens}});
    if (interrupts.cancel) break;
  }
  interrupts.generating = false;
  const int64_t peak = PeakMemoryBytes();
  std::printf("\npeak     %s\n", FormatBytes(peak).c_str());
  if (interrupts.cancel) ReportStopped(results.size(), tests.size());
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
                                       {"interrupted", interrupts.cancel.load()},
                                       {"results", results}};
    Status written = WriteJson(args->Get("--json"), document);
    if (!written.ok()) return ReportError("bench", written.error());
  }
  return interrupts.cancel ? kInterruptedExitStatus : 0;
}

}  // namespace kiln::cli
