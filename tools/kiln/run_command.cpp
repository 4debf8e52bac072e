// kiln run [MODEL] --prompt TEXT | --prompt-file F | --prompt-tokens ID,ID,... [options]
// Streams the continuation to stdout, then a summary on stderr.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli_args.h"
#include "commands.h"
#include "generation_flags.h"
#include "io/npy.h"
#include "model_options.h"
#include "output_paths.h"
#include "progress.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln run [MODEL] (--prompt TEXT | --prompt-file FILE|- | --prompt-tokens ID,ID,...) [options]\n"
    "  MODEL: a checkpoint directory or .kiln file (default: the bundled models/brown-gemma4)\n"
    "  --prompt-tokens     raw token ids: no chat template, no tokenizer needed\n"
    "  --output-tokens     print the generated ids instead of text\n"
    "  --system TEXT       a system message (chat template)\n"
    "  --no-chat-template  use the prompt as plain text\n"
    "  --max-tokens N      new tokens at most (default 256)\n"
    "  --temperature T     0 = greedy (default: the model's generation_config, else greedy)\n"
    "  --top-k K  --top-p P  --min-p P  --repeat-penalty R  --repeat-last-n N (default 64)  --seed S\n"
    "  --stop TEXT         stop string (repeatable)    --ignore-eos  do not stop on end-of-sequence ids\n"
    "  --top-logprobs N    log-probabilities of the N most likely tokens, per token (stderr)\n"
    "  --json-schema FILE|JSON  --regex R  --grammar FILE.gbnf  --json   structured output: only what\n"
    "                      the schema / pattern / grammar / any JSON object allows is generated\n"
    "  --save-logits F     the logits each token was sampled from, float32 [tokens, vocab] .npy\n"
    "  --spec-type ngram|draft|mtp  speculative decoding (docs/speculative.md), same output: prompt\n"
    "                      lookup drafts, a draft model's (--draft MODEL, same tokenizer), or the model's\n"
    "                      Gemma 4 MTP assistant (--draft ASSISTANT, or the one shipped in MODEL/mtp)\n"
    "  --draft-max N       tokens drafted per step (default 8)   --spec-ngram N  longest lookup (default 3)\n"
    "  --ctx N             context length (default 4096)   --chunk N  largest prefill step (default 512)\n"
    "  --chunk-threshold N --num-layers N  --threads N  --guard  --verbose\n"
    "  --quant R           weights quantized by recipe R: q8_0, q4_0, q4_k_m, q6_k, fp8 (docs/quantization.md)\n"
    "  llama.cpp's short flags: -m MODEL -p PROMPT -f FILE -n N -c N -t N, -ngl N (N > 0: --device cuda)\n"
    "  A prompt longer than a chunk shows its progress on a terminal's stderr. Ctrl-C stops the prompt or\n"
    "  the generation: the summary says what was done (stop reason 'cancelled') and kiln exits with status\n"
    "  130; a second Ctrl-C exits at once.\n";

// The prompt's token ids from whichever of the three flags was given.
Result<std::vector<int32_t>> BuildPrompt(const Args& args, const ModelText& text, bool verbose) {
  if (args.Has("--prompt-tokens")) {
    if (args.Has("--system")) return Error(ErrorCode::kInvalidArgument, "--system needs a text prompt, not --prompt-tokens");
    return ParseTokenList(args.Get("--prompt-tokens"));
  }
  std::string prompt = args.Get("--prompt");
  if (args.Has("--prompt-file")) {
    const std::string path = args.Get("--prompt-file");
    std::stringstream contents;
    if (path == "-") {  // standard input
      contents << std::cin.rdbuf();
    } else {
      std::error_code ec;
      if (std::filesystem::is_directory(path, ec)) return Error(ErrorCode::kInvalidArgument, "--prompt-file " + path + " is a directory");
      std::ifstream file(path, std::ios::binary);
      if (!file) return Error(ErrorCode::kNotFound, "cannot read --prompt-file " + path);
      contents << file.rdbuf();
    }
    prompt = contents.str();
  }
  TRY_ASSIGN(const tokenizer::ModelTokenizer* tok, text.RequireTokenizer());
  if (verbose && !tok->chat_template && !args.Has("--no-chat-template")) std::fprintf(stderr, "kiln run: no chat template; plain prompt\n");
  const std::string system = args.Get("--system");
  return EncodePrompt(text, prompt, args.Has("--system") ? &system : nullptr, !args.Has("--no-chat-template"));
}

void PrintLogprobs(const GeneratedToken& token) {
  std::fprintf(stderr, "[%lld] id %d logprob %.4f |", static_cast<long long>(token.index), token.id, token.logprob);
  for (const TokenLogprob& top : token.top_logprobs) std::fprintf(stderr, " %d:%.4f", top.id, top.logprob);
  std::fputc('\n', stderr);
}

}  // namespace

int RunRun(int argc, char** argv) {
  std::vector<char*> arguments(argv, argv + argc);
  auto stops = TakeRepeatedFlag("--stop", &arguments);
  if (!stops) return ReportError("run", stops.error());
  std::set<std::string> value_flags = kModelValueFlags;
  value_flags.insert(kGenerationValueFlags.begin(), kGenerationValueFlags.end());
  value_flags.insert({"--prompt", "--prompt-file", "--prompt-tokens", "--save-logits"});
  std::set<std::string> switches = kModelSwitches;
  switches.insert(kGenerationSwitches.begin(), kGenerationSwitches.end());
  switches.insert({"--output-tokens", "--help"});
  auto args = Args::Parse(static_cast<int>(arguments.size()), arguments.data(), value_flags, switches);
  if (!args) return ReportError("run", args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const int prompt_sources = args->Has("--prompt") + args->Has("--prompt-file") + args->Has("--prompt-tokens");
  if (prompt_sources != 1 || args->positionals().size() > 1) {
    std::fprintf(stderr, "kiln run: give one MODEL and exactly one of --prompt, --prompt-file, --prompt-tokens\n%s",
                 kUsage);
    return 2;
  }
  // Check every flag before the (possibly long) load.
  auto checked = GenerateOptionsFromArgs(*args, nullptr, *stops);
  if (!checked) return ReportError("run", checked.error());
  auto grammar = ConstraintFromArgs(*args);
  if (!grammar) return ReportError("run", grammar.error());
  auto path = ResolveModelPath(*args);
  if (!path) return ReportError("run", path.error());
  auto load_options = ModelOptionsFromArgs(*args, 4096);
  if (!load_options) return ReportError("run", load_options.error());
  const bool verbose = args->Has("--verbose");
  if (args->Has("--save-logits")) {
    Status output = PrepareOutput("run", args->Get("--save-logits"),
                                  {*path, load_options->source, args->Get("--prompt-file"), args->Get("--draft")});
    if (!output.ok()) return ReportError("run", output.error());
  }

  const auto load_start = std::chrono::steady_clock::now();
  auto model = LoadWithProgress(*path, *load_options);
  if (!model) return ReportError("run", model.error());
  auto text = LoadModelText(**model);
  if (!text) return ReportError("run", text.error());
  auto session = (*model)->NewSession();
  if (!session) return ReportError("run", session.error());
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  auto options = GenerateOptionsFromArgs(*args, &*text, *stops);
  if (!options) return ReportError("run", options.error());
  auto drafter = AttachDrafter(*args, *load_options, **model, *text, *options);
  if (!drafter) return ReportError("run", drafter.error());
  auto prompt = BuildPrompt(*args, *text, verbose);
  if (!prompt) return ReportError("run", prompt.error());
  const bool output_tokens = args->Has("--output-tokens");
  if (!output_tokens && !text->tokenizer) {
    return ReportError("run", Error(ErrorCode::kInvalidArgument, text->RequireTokenizer().error().message()));
  }
  if (verbose) {
    std::fprintf(stderr, "model        %s (%s), context %lld, chunk %lld\n", path->c_str(),
                 (*model)->program().target.c_str(), static_cast<long long>((*model)->program().max_context),
                 static_cast<long long>((*model)->program().max_tokens));
    const SamplingOptions& s = options->sampling;
    std::fprintf(stderr, "sampling     temperature %g, top-k %lld, top-p %g, min-p %g, repeat-penalty %g, seed %llu\n",
                 s.temperature, static_cast<long long>(s.top_k), s.top_p, s.min_p, s.repetition_penalty,
                 static_cast<unsigned long long>(s.seed));
    std::fprintf(stderr, "prompt ids  ");
    for (int32_t id : *prompt) std::fprintf(stderr, " %d", id);
    std::fputc('\n', stderr);
  }

  options->prefill_chunk = load_options->max_tokens;
  options->keep_logits = args->Has("--save-logits");
  auto constraint = BindConstraint(*grammar, *text);
  if (!constraint) return ReportError("run", constraint.error());
  options->constraint = *constraint;
  Interrupts& interrupts = InstallInterruptHandler();
  options->cancel = &interrupts.cancel;
  bool first = true;
  options->on_token = [&](const GeneratedToken& token) {
    if (output_tokens) {
      if (token.id >= 0) std::printf(first ? "%d" : " %d", token.id);
      first = false;
    } else {
      std::fwrite(token.text.data(), 1, token.text.size(), stdout);
    }
    // Text that cannot be written (a full disk, a closed pipe) ends generation; main reports it.
    if (StandardOutputFailed()) interrupts.cancel = true;
    if (options->top_logprobs > 0 && token.id >= 0) PrintLogprobs(token);
  };
  Generator generator(*session, text->tokenizer ? &text->tokenizer->tokenizer : nullptr);
  interrupts.generating = true;
  auto generation = GenerateWithProgress(generator, *prompt, *options, interrupts);
  interrupts.generating = false;
  if (!generation) return ReportError("run", generation.error());
  const GenerationResult& result = generation->result;
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (options->keep_logits) {
    const int64_t rows = static_cast<int64_t>(result.tokens.size());
    Status written = WriteNpyF32(args->Get("--save-logits"), result.logits.data(), {rows, session->vocab_size()});
    if (!written.ok()) return ReportError("run", written.error());
  }
  PrintSummary(stderr, load_seconds, *generation);
  if (generation->interrupted) return kInterruptedExitStatus;
  return 0;
}

}  // namespace kiln::cli
