// What `kiln run`, `kiln chat` and `kiln bench` share: the generation flags, the default model,
// loading with a progress line, the summary, peak memory and Ctrl-C handling.
//
// Flags (on top of model_options.h's --ctx --chunk --num-layers --threads --guard --source
// --no-fallback --verify-weights):
//   --max-tokens N          new tokens at most (default 256)
//   --temperature T         0 = greedy; default: generation_config.json's (greedy without do_sample)
//   --top-k K --top-p P --min-p P --repeat-penalty R --repeat-last-n N --seed S
//   --stop TEXT             a stop string; repeat the flag for several
//   --ignore-eos            do not stop on the model's end-of-sequence ids
//   --chunk-threshold N     prompts of at most N new tokens prefill in Tmax steps, longer ones in
//                           --chunk sized chunks (default: Tmax)
//   --top-logprobs N        print the N most likely tokens and their log-probabilities per token
//   --decode-depth N        decode steps in flight when the backend samples on the device
//                           (CUDA; default 4, 0 = sample every token on the host)
//   --spec-type ngram|draft|none  speculative decoding (engine/speculative.h): prompt lookup
//                           drafts, or a draft model's
//   --draft MODEL           the draft model (same tokenizer; implies --spec-type draft)
//   --draft-max N           most tokens drafted per step (default 8; implies --spec-type ngram)
//   --spec-ngram N          longest suffix prompt lookup matches (default 3)
//   --system TEXT --no-chat-template --verbose
#pragma once

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli_args.h"
#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/model_text.h"

namespace kiln::cli {

inline const std::set<std::string> kGenerationValueFlags = {
    "--max-tokens", "--temperature", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n",
    "--seed", "--chunk-threshold", "--top-logprobs", "--system", "--decode-depth", "--json-schema", "--regex", "--grammar",
    "--spec-type", "--draft-max", "--spec-ngram", "--draft"};
inline const std::set<std::string> kGenerationSwitches = {"--ignore-eos", "--no-chat-template", "--verbose", "--json"};

// Structured output from --json-schema FILE|JSON, --regex R, --grammar FILE (GBNF) or --json (any
// JSON object), compiled (a malformed one fails before the model loads); empty when none is given.
Result<std::shared_ptr<const constraint::Grammar>> ConstraintFromArgs(const Args& args);
// The same flags, read but not compiled.
Result<ConstraintSource> ConstraintSourceFromArgs(const Args& args);
// The grammar bound to the model's vocabulary (built once; needs the tokenizer).
Result<ConstraintSpec> BindConstraint(std::shared_ptr<const constraint::Grammar> grammar, const ModelText& text);

// Removes every "--stop TEXT" / "--stop=TEXT" from argv (the parser keeps one value per flag)
// and returns the texts. kInvalidArgument when --stop has no value.
Result<std::vector<std::string>> TakeRepeatedFlag(const std::string& flag, std::vector<char*>* argv);

// --spec-type, --draft-max, --spec-ngram, validated.
Result<SpeculativeOptions> SpeculativeOptionsFromArgs(const Args& args);

// With --draft MODEL: loads the draft model (the target's load options, on its device), checks
// that it shares the target's vocabulary (and tokenizer, where both have one), and points
// options.speculative at it; the returned drafter must outlive generation. Null otherwise.
Result<std::unique_ptr<Drafter>> AttachDrafter(const Args& args, const LoadOptions& load_options, const LoadedModel& target,
                                               const ModelText& target_text, GenerateOptions& options);

// Sampling and stopping from the flags, on top of the model's defaults. Validates the values
// (kInvalidArgument: "top-p must be in (0, 1], got 1.5"). `text` may be null before loading:
// the flags are then checked against the built-in defaults.
Result<GenerateOptions> GenerateOptionsFromArgs(const Args& args, const ModelText* text,
                                                std::vector<std::string> stop_strings);

// A text prompt's token ids: through the model's chat template (as one user message, after
// `system` when given) when it has one and `chat_template` is true, else the plain text.
// kInvalidArgument for a system message without a chat template.
Result<std::vector<int32_t>> EncodePrompt(const ModelText& text, const std::string& prompt, const std::string* system,
                                          bool chat_template);

// The MODEL positional, or the bundled default (models/brown-gemma4 in the source tree) when
// there is none; kInvalidArgument when neither exists.
Result<std::string> ResolveModelPath(const Args& args);

// Loads the model; after a second without an answer prints "kiln: loading MODEL ..." on stderr
// (updated in place on a terminal) and how long it took.
Result<std::unique_ptr<LoadedModel>> LoadWithProgress(const std::string& path, const LoadOptions& options);

// ru_maxrss of this process, in bytes.
int64_t PeakMemoryBytes();
// "1.50 GiB", "12.3 MiB", "900 B".
std::string FormatBytes(int64_t bytes);

// A generation as the CLI reports it: the engine's result (generator.h) and how much of the
// prompt was run. After Ctrl-C during the prompt, `prompt_processed` < result.prompt_tokens.
struct Generation {
  GenerationResult result;
  int64_t prompt_processed = 0;  // prompt tokens in the cache at the end: reused + prefilled
  bool interrupted = false;      // result.stop_reason is kCancelled because of Ctrl-C
};

// The summary after a generation:
//   stop reason  eos after 12 tokens
//   load         0.42 s
//   prompt       24 tokens (0 reused), 0.010 s, 2400.0 tok/s
//   generation   12 tokens, 0.050 s, 220.0 tok/s
//   first token  0.012 s
//   peak memory  123.4 MiB
// After Ctrl-C during the prompt (rates over the tokens actually prefilled; no first token):
//   stop reason  cancelled during the prompt (stopped by the user)
//   prompt       1536 of 16000 tokens (0 reused), 1.900 s, 808.4 tok/s
//   first token  none
// load_seconds < 0 leaves out the load line.
void PrintSummary(FILE* out, double load_seconds, const Generation& generation);

// Ctrl-C: the first SIGINT while `generating` sets `cancel` and `interrupted` (generation stops
// with reason "cancelled"; `kiln run` and `kiln bench` then report what they have and exit with
// kInterruptedExitStatus); a second one, or one outside generation, exits with that status at once.
inline constexpr int kInterruptedExitStatus = 130;  // 128 + SIGINT, as shells report it
struct Interrupts {
  std::atomic<bool> cancel{false};
  std::atomic<bool> interrupted{false};
  std::atomic<bool> generating{false};
};
Interrupts& InstallInterruptHandler();

}  // namespace kiln::cli
