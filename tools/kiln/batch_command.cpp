// kiln batch [MODEL] --prompts FILE.jsonl [--parallel N] [generation options]
// Offline batch generation: every line of FILE (or - for stdin) is one request, run through the
// scheduler with up to N sequences per step; one JSON line per request on stdout, in input order,
// as soon as it and every one before it are done; a summary on stderr.
//
// An input line is an object with "prompt" (text, through the chat template like `kiln run`) or
// "prompt_tokens" (ids), and optionally "id" (echoed), "system", "max_tokens", "temperature",
// "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed", "stop" (a string or a
// list), "ignore_eos". Flags give the defaults. Every line is checked before anything runs: a bad
// line fails the command naming the line, and nothing is generated. It runs on the public API
// (include/kiln/kiln.h), as a program embedding kiln would.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli_args.h"
#include "commands.h"
#include "generation_flags.h"
#include "kiln/kiln.h"
#include "model_options.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln batch [MODEL] --prompts FILE.jsonl [options]\n"
    "  FILE: one JSON object per line (- reads stdin): {\"prompt\": TEXT} or {\"prompt_tokens\": [IDS]}, and\n"
    "        optionally id, system, max_tokens, temperature, top_k, top_p, min_p, repeat_penalty,\n"
    "        repeat_last_n, seed, stop (string or list), ignore_eos, and structured output: json_schema\n"
    "        (object or text), regex, grammar (GBNF text) or json (true: any JSON object)\n"
    "  Output: one JSON line per request, in input order: index, id, text, tokens, stop_reason,\n"
    "        prompt_tokens, cached_tokens, draft_tokens and accepted_draft_tokens (when it drafted), timings\n"
    "  --parallel N        sequences per step (default 8)\n"
    "  --no-prefix-cache   prefill every prompt in full\n"
    "  --spec-type ngram|draft|mtp  --draft MODEL  --draft-max N  speculative decoding (same output):\n"
    "                      prompt lookup, a smaller model with the same tokenizer drafting for every\n"
    "                      request, or the model's Gemma 4 MTP assistant (--draft, or MODEL/mtp)\n"
    "  The generation flags of `kiln run` give every request's defaults: --max-tokens --temperature\n"
    "  --top-k --top-p --min-p --repeat-penalty --repeat-last-n --seed --stop --ignore-eos --system\n"
    "  --no-chat-template; and --ctx --chunk --threads --device --kv-cache --quant.\n";

// The flags a Model takes (ModelOptions); the others of `kiln run` have no meaning here.
const std::set<std::string> kBatchModelFlags = {"--ctx", "--chunk", "--parallel", "--threads", "--device", "--kv-cache", "--quant"};

struct Defaults {
  ConstraintSource constraint;  // --json-schema, --regex, --grammar, --json
  int64_t max_tokens = 256;
  std::optional<SamplingParams> sampling;  // empty: the model's
  std::vector<std::string> stop;
  bool ignore_eos = false;
};

using Json = nlohmann::ordered_json;

Error LineError(size_t line, const std::string& what) {
  return Error(ErrorCode::kInvalidArgument, "--prompts line " + std::to_string(line) + ": " + what);
}

// One input line into a request on top of the flags' defaults.
Result<GenerationRequest> ParseLine(const std::string& text_line, size_t line, const Defaults& defaults, const ModelInfo& info,
                                    const Args& args, Json* id) {
  Json object = Json::parse(text_line, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) return LineError(line, "not a JSON object");
  static const std::set<std::string> kKeys = {"id", "prompt", "prompt_tokens", "system", "max_tokens", "temperature", "top_k",
                                              "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed", "stop", "ignore_eos",
                                              "json_schema", "regex", "grammar", "json"};
  for (const auto& [key, value] : object.items()) {
    if (!kKeys.count(key)) return LineError(line, "unknown key '" + key + "'");
  }
  if (object.contains("prompt") == object.contains("prompt_tokens")) return LineError(line, "give exactly one of prompt, prompt_tokens");
  *id = object.contains("id") ? object["id"] : Json(nullptr);
  GenerationRequest request;
  request.max_tokens = defaults.max_tokens;
  request.stop = defaults.stop;
  request.ignore_eos = defaults.ignore_eos;
  const bool line_constraint = object.contains("json_schema") || object.contains("regex") || object.contains("grammar") || object.contains("json");
  if (!line_constraint) {
    request.json_schema = defaults.constraint.json_schema;
    request.regex = defaults.constraint.regex;
    request.grammar = defaults.constraint.gbnf;
    request.json_object = defaults.constraint.any_json;
  }
  SamplingParams sampling = defaults.sampling.value_or(info.default_sampling);
  bool sampling_set = defaults.sampling.has_value();
  auto number = [&](const char* key, auto* out) -> Status {
    if (!object.contains(key)) return Status::Ok();
    if (!object[key].is_number()) return LineError(line, std::string(key) + " must be a number");
    *out = object[key].get<std::remove_pointer_t<decltype(out)>>();
    sampling_set |= std::string(key) != "max_tokens";
    return Status::Ok();
  };
  TRY(number("max_tokens", &request.max_tokens));
  TRY(number("temperature", &sampling.temperature));
  TRY(number("top_k", &sampling.top_k));
  TRY(number("top_p", &sampling.top_p));
  TRY(number("min_p", &sampling.min_p));
  TRY(number("repeat_penalty", &sampling.repetition_penalty));
  TRY(number("repeat_last_n", &sampling.repetition_window));
  TRY(number("seed", &sampling.seed));
  if (sampling_set) request.sampling = sampling;
  if (object.contains("ignore_eos")) {
    if (!object["ignore_eos"].is_boolean()) return LineError(line, "ignore_eos must be true or false");
    request.ignore_eos = object["ignore_eos"].get<bool>();
  }
  // Structured output: a schema (an object, or its text), a regex, a GBNF grammar's text, or any JSON object.
  if (object.contains("json_schema")) {
    const Json& schema = object["json_schema"];
    if (!schema.is_object() && !schema.is_string()) return LineError(line, "json_schema must be a schema object or its text");
    request.json_schema = schema.is_string() ? schema.get<std::string>() : schema.dump();
  }
  for (const char* key : {"regex", "grammar"}) {
    if (!object.contains(key)) continue;
    if (!object[key].is_string()) return LineError(line, std::string(key) + " must be a string");
    (std::string(key) == "regex" ? request.regex : request.grammar) = object[key].get<std::string>();
  }
  if (object.contains("json")) {
    if (!object["json"].is_boolean()) return LineError(line, "json must be true or false");
    request.json_object = object["json"].get<bool>();
  }
  if (object.contains("stop")) {
    const Json& stop = object["stop"];
    request.stop.clear();
    if (stop.is_string()) {
      request.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array()) {
      for (const Json& s : stop) {
        if (!s.is_string()) return LineError(line, "stop must be a string or a list of strings");
        request.stop.push_back(s.get<std::string>());
      }
    } else {
      return LineError(line, "stop must be a string or a list of strings");
    }
  }
  if (object.contains("prompt_tokens")) {
    if (!object["prompt_tokens"].is_array()) return LineError(line, "prompt_tokens must be a list of token ids");
    for (const Json& t : object["prompt_tokens"]) {
      if (!t.is_number_integer()) return LineError(line, "prompt_tokens must be a list of token ids");
      request.prompt_tokens.push_back(t.get<int32_t>());
    }
    if (object.contains("system")) return LineError(line, "system needs a text prompt, not prompt_tokens");
    if (request.prompt_tokens.empty()) return LineError(line, "the prompt is empty");
    return request;
  }
  if (!object["prompt"].is_string()) return LineError(line, "prompt must be a string");
  const std::string prompt = object["prompt"].get<std::string>();
  if (prompt.empty()) return LineError(line, "the prompt is empty");
  std::string system = args.Get("--system");
  const bool has_system = object.contains("system") || args.Has("--system");
  if (object.contains("system")) {
    if (!object["system"].is_string()) return LineError(line, "system must be a string");
    system = object["system"].get<std::string>();
  }
  if (info.has_chat_template && !args.Has("--no-chat-template")) {
    if (has_system) request.messages.push_back({"system", system});
    request.messages.push_back({"user", prompt});
  } else {
    if (has_system) return LineError(line, "system needs the model's chat template");
    request.prompt = prompt;
  }
  return request;
}

Json ResultJson(size_t index, const Json& id, const Completion& result) {
  Json out;
  out["index"] = index;
  if (!id.is_null()) out["id"] = id;
  if (result.error) {
    out["error"] = result.error->ToString();
    return out;
  }
  out["text"] = result.text;
  out["tokens"] = result.tokens;
  out["stop_reason"] = result.stop_reason;
  if (result.stop_reason == "stop_string") out["stop_string"] = result.stop_string;
  out["prompt_tokens"] = result.prompt_tokens;
  out["cached_tokens"] = result.cached_tokens;
  if (result.draft_tokens > 0) {  // speculative decoding
    out["draft_tokens"] = result.draft_tokens;
    out["accepted_draft_tokens"] = result.accepted_draft_tokens;
  }
  out["timings"] = {{"prompt_seconds", result.prompt_seconds},
                    {"first_token_seconds", result.first_token_seconds},
                    {"generation_seconds", result.generation_seconds}};
  return out;
}

Result<std::vector<std::string>> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) return Error(ErrorCode::kNotFound, "cannot read --prompts " + path);
    in = &file;
  }
  for (std::string line; std::getline(*in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

int RunBatch(int argc, char** argv) {
  std::vector<char*> arguments(argv, argv + argc);
  auto stops = TakeRepeatedFlag("--stop", &arguments);
  if (!stops) return ReportError("batch", stops.error());
  std::set<std::string> value_flags = kBatchModelFlags;
  value_flags.insert(kGenerationValueFlags.begin(), kGenerationValueFlags.end());
  value_flags.erase("--decode-depth");
  value_flags.erase("--chunk-threshold");
  value_flags.erase("--top-logprobs");
  value_flags.insert("--prompts");
  std::set<std::string> switches = kGenerationSwitches;
  switches.erase("--verbose");
  switches.insert({"--no-prefix-cache", "--help"});
  auto args = Args::Parse(static_cast<int>(arguments.size()), arguments.data(), value_flags, switches);
  if (!args) return ReportError("batch", args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args->Has("--prompts") || args->positionals().size() > 1) {
    std::fprintf(stderr, "kiln batch: give one MODEL and --prompts FILE.jsonl\n%s", kUsage);
    return 2;
  }
  // The flags, checked before the load (sampling ranges included).
  auto flags = GenerateOptionsFromArgs(*args, nullptr, *stops);
  if (!flags) return ReportError("batch", flags.error());
  auto constraint = ConstraintSourceFromArgs(*args);
  if (!constraint) return ReportError("batch", constraint.error());
  if (auto compiled = CompileConstraint(*constraint); !compiled) return ReportError("batch", compiled.error());
  auto load_options = ModelOptionsFromArgs(*args, 4096);
  if (!load_options) return ReportError("batch", load_options.error());
  auto lines = ReadLines(args->Get("--prompts"));
  if (!lines) return ReportError("batch", lines.error());
  auto path = ResolveModelPath(*args);
  if (!path) return ReportError("batch", path.error());

  ModelOptions options;
  options.device = load_options->device;
  options.context = load_options->max_context;
  options.chunk = load_options->max_tokens;
  options.parallel = args->Has("--parallel") ? load_options->max_sequences : std::min<int64_t>(8, load_options->max_tokens);
  options.threads = load_options->num_threads;
  options.prefix_cache = !args->Has("--no-prefix-cache");
  options.kv_cache = args->Get("--kv-cache");
  options.quant = args->Get("--quant");
  if (flags->speculative.enabled()) {
    options.speculative = SpeculativeTypeName(flags->speculative.type);
    options.draft_max = flags->speculative.draft_max;
    if (flags->speculative.type == SpeculativeType::kDraft) options.draft_model = args->Get("--draft");
    if (flags->speculative.type == SpeculativeType::kMtp) options.draft_model = load_options->assistant;
  }
  const auto start = std::chrono::steady_clock::now();
  auto model = Model::Load(*path, options);
  if (!model) return ReportError("batch", model.error());
  const ModelInfo info = (*model)->info();

  Defaults defaults;
  defaults.constraint = *constraint;
  defaults.max_tokens = flags->max_new_tokens;
  defaults.stop = *stops;
  defaults.ignore_eos = args->Has("--ignore-eos");
  const bool sampling_flags = args->Has("--temperature") || args->Has("--top-k") || args->Has("--top-p") || args->Has("--min-p") ||
                              args->Has("--repeat-penalty") || args->Has("--repeat-last-n") || args->Has("--seed");
  if (sampling_flags) {
    // The flags over the model's defaults, exactly as `kiln run` combines them.
    SamplingParams s = info.default_sampling;
    const SamplingOptions& f = flags->sampling;
    if (args->Has("--temperature")) s.temperature = f.temperature;
    if (args->Has("--top-k")) s.top_k = f.top_k;
    if (args->Has("--top-p")) s.top_p = f.top_p;
    if (args->Has("--min-p")) s.min_p = f.min_p;
    if (args->Has("--repeat-penalty")) s.repetition_penalty = f.repetition_penalty;
    if (args->Has("--repeat-last-n")) s.repetition_window = f.repetition_window;
    s.seed = f.seed;
    defaults.sampling = s;
  }

  // Every line first: a bad one fails the command before anything runs.
  std::vector<GenerationRequest> requests;
  std::vector<Json> ids;
  for (size_t i = 0; i < lines->size(); ++i) {
    if ((*lines)[i].find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines
    Json id;
    auto request = ParseLine((*lines)[i], i + 1, defaults, info, *args, &id);
    if (!request) return ReportError("batch", request.error());
    if (Status valid = (*model)->Validate(*request); !valid.ok()) return ReportError("batch", LineError(i + 1, valid.error().message()));
    requests.push_back(std::move(*request));
    ids.push_back(std::move(id));
  }

  const auto loaded = std::chrono::steady_clock::now();
  // Results print in input order, each as soon as those before it are out (callbacks run on the
  // model's driver thread, one at a time).
  std::mutex mutex;
  std::condition_variable all_done;
  std::map<size_t, Completion> done;
  size_t next = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].on_done = [&, i](const Completion& result) {
      std::lock_guard<std::mutex> lock(mutex);
      done.emplace(i, result);
      for (auto it = done.find(next); it != done.end(); it = done.find(next)) {
        std::printf("%s\n", ResultJson(next, ids[next], it->second).dump().c_str());
        done.erase(it);
        ++next;
      }
      std::fflush(stdout);
      all_done.notify_all();
    };
    auto id = (*model)->Submit(std::move(requests[i]));
    if (!id) return ReportError("batch", LineError(i + 1, id.error().message()));
  }
  {
    std::unique_lock<std::mutex> lock(mutex);
    all_done.wait(lock, [&] { return next == requests.size(); });
  }
  const auto end = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(end - start).count();
  const double run_seconds = std::chrono::duration<double>(end - loaded).count();
  const ModelStats stats = (*model)->stats();
  std::fprintf(stderr, "requests     %lld, %lld sequences per step, %lld preempted\n", static_cast<long long>(stats.finished),
               static_cast<long long>(info.parallel), static_cast<long long>(stats.preemptions));
  std::fprintf(stderr, "prompt       %lld tokens (%lld from the prefix cache)\n", static_cast<long long>(stats.prompt_tokens),
               static_cast<long long>(stats.cached_tokens));
  std::fprintf(stderr, "generation   %lld tokens, %.3f s, %.1f tok/s over all requests (load included); %.3f s, %.1f tok/s after it\n",
               static_cast<long long>(stats.generated_tokens), seconds, seconds > 0 ? stats.generated_tokens / seconds : 0.0,
               run_seconds, run_seconds > 0 ? stats.generated_tokens / run_seconds : 0.0);
  if (stats.draft_tokens > 0) {
    std::fprintf(stderr, "speculative  %lld drafted, %lld accepted (%.1f%%)\n", static_cast<long long>(stats.draft_tokens),
                 static_cast<long long>(stats.accepted_draft_tokens),
                 100.0 * static_cast<double>(stats.accepted_draft_tokens) / static_cast<double>(stats.draft_tokens));
  }
  std::fprintf(stderr, "peak memory  %s\n", FormatBytes(PeakMemoryBytes()).c_str());
  return 0;
}

}  // namespace kiln::cli
