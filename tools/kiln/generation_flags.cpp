#include "generation_flags.h"

#include "engine/draft_model.h"
#include "engine/mtp_draft.h"

#include "constraint/vocabulary.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

namespace kiln::cli {

namespace {

Result<std::optional<float>> GetFloat(const Args& args, const std::string& flag) {
  if (!args.Has(flag)) return std::optional<float>();
  const std::string text = args.Get(flag);
  errno = 0;
  char* end = nullptr;
  const float value = std::strtof(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0) {
    return Error(ErrorCode::kInvalidArgument, flag + " expects a number, got '" + text + "'");
  }
  return std::optional<float>(value);
}

}  // namespace

Result<std::shared_ptr<const constraint::Grammar>> ConstraintFromArgs(const Args& args) {
  TRY_ASSIGN(ConstraintSource source, ConstraintSourceFromArgs(args));
  return CompileConstraint(source);
}

Result<ConstraintSource> ConstraintSourceFromArgs(const Args& args) {
  ConstraintSource source;
  source.regex = args.Get("--regex");
  source.any_json = args.Has("--json");
  if (args.Has("--regex") && source.regex.empty()) return Error(ErrorCode::kInvalidArgument, "--regex needs a pattern");
  if (args.Has("--json-schema")) {
    // A file, or the schema itself.
    const std::string value = args.Get("--json-schema");
    std::error_code ec;
    if (std::filesystem::is_regular_file(value, ec)) {
      std::ifstream file(value, std::ios::binary);
      source.json_schema.assign(std::istreambuf_iterator<char>(file), {});
    } else if (value.find_first_of("{[") == std::string::npos) {
      return Error(ErrorCode::kNotFound, "--json-schema " + value + " is neither a file nor a JSON schema");
    } else {
      source.json_schema = value;
    }
    if (source.json_schema.empty()) return Error(ErrorCode::kInvalidArgument, "--json-schema is empty");
  }
  if (args.Has("--grammar")) {
    std::ifstream file(args.Get("--grammar"), std::ios::binary);
    if (!file) return Error(ErrorCode::kNotFound, "cannot read --grammar " + args.Get("--grammar"));
    source.gbnf.assign(std::istreambuf_iterator<char>(file), {});
    if (source.gbnf.empty()) return Error(ErrorCode::kInvalidArgument, "--grammar " + args.Get("--grammar") + " is empty");
  }
  return source;
}

Result<ConstraintSpec> BindConstraint(std::shared_ptr<const constraint::Grammar> grammar, const ModelText& text) {
  ConstraintSpec spec;
  if (!grammar) return spec;
  TRY_ASSIGN(const tokenizer::ModelTokenizer* tok, text.RequireTokenizer());
  TRY_ASSIGN(spec.vocabulary, constraint::TokenVocabulary::FromTokenizer(tok->tokenizer, text.stop_token_ids));
  spec.grammar = std::move(grammar);
  return spec;
}

Result<std::vector<int32_t>> EncodePrompt(const ModelText& text, const std::string& prompt, const std::string* system,
                                          bool chat_template) {
  TRY_ASSIGN(const tokenizer::ModelTokenizer* tok, text.RequireTokenizer());
  if (!tok->chat_template.has_value() || !chat_template) {
    if (system) return Error(ErrorCode::kInvalidArgument, "--system needs the model's chat template");
    return EncodePlain(*tok, prompt);
  }
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (system) messages.push_back({{"role", "system"}, {"content", *system}});
  messages.push_back({{"role", "user"}, {"content", prompt}});
  return EncodeChat(*tok, messages);
}

Result<std::vector<std::string>> TakeRepeatedFlag(const std::string& flag, std::vector<char*>* argv) {
  std::vector<std::string> values;
  std::vector<char*> kept;
  for (size_t i = 0; i < argv->size(); ++i) {
    const std::string arg = (*argv)[i];
    if (arg == flag) {
      if (i + 1 >= argv->size()) return Error(ErrorCode::kInvalidArgument, flag + " needs a value");
      values.push_back((*argv)[++i]);
    } else if (arg.rfind(flag + "=", 0) == 0) {
      values.push_back(arg.substr(flag.size() + 1));
    } else {
      kept.push_back((*argv)[i]);
    }
  }
  *argv = std::move(kept);
  return values;
}

Result<SpeculativeOptions> SpeculativeOptionsFromArgs(const Args& args) {
  SpeculativeOptions options;
  if (args.Has("--spec-type")) {
    TRY_ASSIGN(options.type, ParseSpeculativeType(args.Get("--spec-type")));
  } else if (args.Has("--draft")) {
    // An MTP assistant (a checkpoint or a GGUF drafter) drafts as one; any other model as a draft model.
    options.type = IsMtpAssistant(args.Get("--draft")) ? SpeculativeType::kMtp : SpeculativeType::kDraft;
  } else if (args.Has("--draft-max") || args.Has("--spec-ngram")) {
    options.type = SpeculativeType::kNgram;  // the one drafter that needs no model
  }
  if (options.type == SpeculativeType::kDraft && !args.Has("--draft")) {
    return Error(ErrorCode::kInvalidArgument, "--spec-type draft needs --draft MODEL");
  }
  if (args.Has("--draft") && options.type != SpeculativeType::kDraft && options.type != SpeculativeType::kMtp) {
    return Error(ErrorCode::kInvalidArgument, "--draft MODEL drafts with --spec-type draft or mtp, not " +
                                                  std::string(SpeculativeTypeName(options.type)));
  }
  TRY_ASSIGN(const int64_t draft_max, args.GetInt("--draft-max", options.draft_max, 1, 64));
  TRY_ASSIGN(const int64_t ngram, args.GetInt("--spec-ngram", options.ngram_max, 1, 64));
  options.draft_max = static_cast<int>(draft_max);
  options.ngram_max = static_cast<int>(ngram);
  TRY(options.Validate());
  return options;
}

Result<std::unique_ptr<Drafter>> AttachDrafter(const Args& args, const LoadOptions& load_options, const LoadedModel& target,
                                               const ModelText& target_text, GenerateOptions& options) {
  if (options.speculative.type != SpeculativeType::kDraft) return std::unique_ptr<Drafter>();
  LoadOptions draft_options = load_options;
  draft_options.device = target.device();
  TRY_ASSIGN(std::unique_ptr<LoadedModel> draft, LoadWithProgress(args.Get("--draft"), draft_options));
  if (target_text.tokenizer && draft->architecture().vocab_size() == target.architecture().vocab_size()) {
    TRY_ASSIGN(ModelText draft_text, LoadModelText(*draft));
    if (draft_text.tokenizer) TRY(CheckDraftTokenizer(target_text.tokenizer->tokenizer, draft_text.tokenizer->tokenizer, args.Get("--draft")));
  }
  TRY_ASSIGN(std::unique_ptr<ModelDrafter> drafter, ModelDrafter::Create(std::move(draft), target.architecture().vocab_size()));
  options.speculative.drafter = drafter.get();
  return std::unique_ptr<Drafter>(std::move(drafter));
}

Result<GenerateOptions> GenerateOptionsFromArgs(const Args& args, const ModelText* text,
                                                std::vector<std::string> stop_strings) {
  GenerateOptions options;
  TRY_ASSIGN(options.max_new_tokens, args.GetInt("--max-tokens", 256, 0, int64_t{1} << 30));
  TRY_ASSIGN(options.prefill_chunk_threshold, args.GetInt("--chunk-threshold", 0, 1, int64_t{1} << 30));
  TRY_ASSIGN(options.top_logprobs, args.GetInt("--top-logprobs", 0, 0, 1000));
  TRY_ASSIGN(const int64_t depth, args.GetInt("--decode-depth", 4, 0, PlacedModel::kMaxDecodeInFlight));
  options.decode_depth = static_cast<int>(depth);
  TRY_ASSIGN(options.speculative, SpeculativeOptionsFromArgs(args));
  SamplingOptions& sampling = options.sampling;
  if (text) {
    sampling = text->default_sampling;
    options.stop_token_ids = text->stop_token_ids;
  }
  TRY_ASSIGN(std::optional<float> temperature, GetFloat(args, "--temperature"));
  TRY_ASSIGN(std::optional<float> top_p, GetFloat(args, "--top-p"));
  TRY_ASSIGN(std::optional<float> min_p, GetFloat(args, "--min-p"));
  TRY_ASSIGN(std::optional<float> penalty, GetFloat(args, "--repeat-penalty"));
  if (temperature) sampling.temperature = *temperature;
  if (top_p) sampling.top_p = *top_p;
  if (min_p) sampling.min_p = *min_p;
  if (penalty) sampling.repetition_penalty = *penalty;
  // Negative values reach Validate, which names the allowed range.
  TRY_ASSIGN(sampling.top_k, args.GetInt("--top-k", sampling.top_k, INT32_MIN, INT32_MAX));
  TRY_ASSIGN(sampling.repetition_window, args.GetInt("--repeat-last-n", sampling.repetition_window, INT32_MIN, INT32_MAX));
  TRY_ASSIGN(const int64_t seed, args.GetInt("--seed", 0, 0, INT64_MAX));
  sampling.seed = static_cast<uint64_t>(seed);
  TRY(sampling.Validate());
  options.ignore_eos = args.Has("--ignore-eos");
  options.stop_strings = std::move(stop_strings);
  return options;
}

Result<std::string> ResolveModelPath(const Args& args) {
  if (!args.positionals().empty()) return args.positionals()[0];
  const std::string bundled = KILN_DEFAULT_MODEL_DIR;
  std::error_code ec;
  if (std::filesystem::is_directory(bundled, ec)) return bundled;
  return Error(ErrorCode::kInvalidArgument, "no MODEL given and none is bundled (" + bundled +
                                                " does not exist); pass a checkpoint directory or a .kiln file");
}

Result<std::unique_ptr<LoadedModel>> LoadWithProgress(const std::string& path, const LoadOptions& options) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  std::mutex mutex;
  std::condition_variable done_signal;
  bool done = false;
  bool printed = false;
  const bool terminal = isatty(STDERR_FILENO);
  // Silent for the first second; then a line (refreshed on a terminal) until loading ends.
  std::thread reporter([&] {
    std::unique_lock lock(mutex);
    if (done_signal.wait_for(lock, std::chrono::seconds(1), [&] { return done; })) return;
    do {
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      std::fprintf(stderr, "%skiln: loading %s (compiling and checking the plan) ... %.0f s%s", terminal ? "\r" : "",
                   path.c_str(), seconds, terminal ? "" : "\n");
      std::fflush(stderr);
      printed = true;
      if (!terminal) break;
    } while (!done_signal.wait_for(lock, std::chrono::seconds(1), [&] { return done; }));
  });
  Result<std::unique_ptr<LoadedModel>> model = LoadedModel::Load(path, options);
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  done_signal.notify_one();
  reporter.join();
  if (printed) {
    std::fprintf(stderr, "%skiln: loaded %s in %.1f s\n", terminal ? "\n" : "", path.c_str(),
                 std::chrono::duration<double>(Clock::now() - start).count());
  }
  return model;
}

int64_t PeakMemoryBytes() {
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

std::string FormatBytes(int64_t bytes) {
  char buffer[32];
  const double value = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) {
    std::snprintf(buffer, sizeof(buffer), "%.2f GiB", value / (1 << 30));
  } else if (bytes >= (int64_t{1} << 20)) {
    std::snprintf(buffer, sizeof(buffer), "%.1f MiB", value / (1 << 20));
  } else if (bytes >= 1024) {
    std::snprintf(buffer, sizeof(buffer), "%.1f KiB", value / 1024);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%lld B", static_cast<long long>(bytes));
  }
  return buffer;
}

void PrintSummary(FILE* out, double load_seconds, const Generation& generation) {
  const GenerationResult& result = generation.result;
  const bool whole_prompt = generation.prompt_processed >= result.prompt_tokens;
  const int64_t prefilled = std::max<int64_t>(0, generation.prompt_processed - result.reused_tokens);
  const double prompt_rate = result.prefill_seconds > 0 ? static_cast<double>(prefilled) / result.prefill_seconds : 0;
  // Tokens after the first over the time after it (a speculative step emits several).
  const int64_t decoded = std::max<int64_t>(0, static_cast<int64_t>(result.tokens.size()) - 1);
  const double decode_rate = result.decode_seconds > 0 ? static_cast<double>(decoded) / result.decode_seconds : 0;
  const char* by_user = generation.interrupted ? " (stopped by the user)" : "";
  if (!whole_prompt) {
    std::fprintf(out, "stop reason  %s during the prompt%s\n", StopReasonName(result.stop_reason), by_user);
  } else {
    std::fprintf(out, "stop reason  %s after %zu tokens%s%s%s\n", StopReasonName(result.stop_reason), result.tokens.size(),
                 result.stop_string.empty() ? "" : ": ", result.stop_string.c_str(), by_user);
  }
  if (load_seconds >= 0) std::fprintf(out, "load         %.2f s\n", load_seconds);
  if (whole_prompt) {
    std::fprintf(out, "prompt       %lld tokens (%lld reused), %.3f s, %.1f tok/s\n",
                 static_cast<long long>(result.prompt_tokens), static_cast<long long>(result.reused_tokens),
                 result.prefill_seconds, prompt_rate);
  } else {
    std::fprintf(out, "prompt       %lld of %lld tokens (%lld reused), %.3f s, %.1f tok/s\n",
                 static_cast<long long>(generation.prompt_processed), static_cast<long long>(result.prompt_tokens),
                 static_cast<long long>(result.reused_tokens), result.prefill_seconds, prompt_rate);
  }
  // The first token comes from the prefill's logits; the rate counts the decode steps after it.
  std::fprintf(out, "generation   %zu tokens, %.3f s, %.1f tok/s\n", result.tokens.size(), result.decode_seconds,
               decode_rate);
  if (result.tokens.empty()) {
    std::fprintf(out, "first token  none\n");
  } else {
    std::fprintf(out, "first token  %.3f s\n", result.first_token_seconds);
  }
  if (result.draft_tokens > 0) {
    std::fprintf(out, "speculative  %lld drafted, %lld accepted (%.1f%%), %lld steps for %zu tokens\n",
                 static_cast<long long>(result.draft_tokens), static_cast<long long>(result.accepted_draft_tokens),
                 100.0 * static_cast<double>(result.accepted_draft_tokens) / static_cast<double>(result.draft_tokens),
                 static_cast<long long>(result.decode_steps), result.tokens.size());
    std::string positions;
    for (size_t i = 0; i < result.drafted_by_position.size(); ++i) {
      char part[48];
      std::snprintf(part, sizeof(part), "%s%zu: %.0f%%", i ? ", " : "", i + 1,
                    100.0 * static_cast<double>(result.accepted_by_position[i]) / static_cast<double>(std::max<int64_t>(result.drafted_by_position[i], 1)));
      positions += part;
    }
    if (!positions.empty()) std::fprintf(out, "acceptance   by draft position: %s\n", positions.c_str());
  }
  std::fprintf(out, "peak memory  %s\n", FormatBytes(PeakMemoryBytes()).c_str());
}

namespace {

Interrupts g_interrupts;

extern "C" void OnInterrupt(int) {
  // Async-signal-safe: lock-free atomics and _exit only.
  if (g_interrupts.generating.load() && !g_interrupts.cancel.load()) {
    g_interrupts.interrupted.store(true);
    g_interrupts.cancel.store(true);
    return;
  }
  _exit(kInterruptedExitStatus);
}

}  // namespace

Interrupts& InstallInterruptHandler() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  return g_interrupts;
}

}  // namespace kiln::cli
