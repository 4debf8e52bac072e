// kiln chat [MODEL] [options]: an interactive conversation in the terminal. Each turn renders
// the whole conversation with the model's chat template; the Generator reuses the cached prefix
// of the previous turns, so only the new suffix is prefilled.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#if KILN_HAVE_READLINE
#include <editline/readline.h>
#endif

#include "cli_args.h"
#include "commands.h"
#include "generation_flags.h"
#include "model_options.h"
#include "progress.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln chat [MODEL] [options]\n"
    "  MODEL: a checkpoint directory or .kiln file (default: the bundled models/brown-gemma4)\n"
    "  --system TEXT  a system message     --no-chat-template  turns joined as plain text\n"
    "  --max-tokens N (per reply, default 256)  --temperature T  --top-k K  --top-p P  --min-p P\n"
    "  --repeat-penalty R  --repeat-last-n N  --seed S  --stop TEXT  --ctx N  --chunk N  --threads N\n"
    "  --spec-type ngram|draft|mtp  --draft MODEL  --draft-max N  speculative decoding (docs/speculative.md)\n"
    "  --verbose      print the summary after every reply\n"
    "In the chat: /reset starts over, /stats prints the last reply's summary, /exit (or Ctrl-D)\n"
    "quits. Ctrl-C stops a reply; a second Ctrl-C, or one at the prompt, exits.\n";

// One line of input; false at end of input. libedit (editing, history) on a terminal.
bool ReadLine(bool terminal, std::string* line) {
#if KILN_HAVE_READLINE
  if (terminal) {
    char* input = readline("> ");
    if (!input) return false;
    *line = input;
    if (!line->empty()) add_history(input);
    std::free(input);
    return true;
  }
#endif
  if (terminal) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
  }
  return static_cast<bool>(std::getline(std::cin, *line));
}

}  // namespace

int RunChat(int argc, char** argv) {
  std::vector<char*> arguments(argv, argv + argc);
  auto stops = TakeRepeatedFlag("--stop", &arguments);
  if (!stops) return ReportError("chat", stops.error());
  std::set<std::string> value_flags = kModelValueFlags;
  value_flags.insert(kGenerationValueFlags.begin(), kGenerationValueFlags.end());
  std::set<std::string> switches = kModelSwitches;
  switches.insert(kGenerationSwitches.begin(), kGenerationSwitches.end());
  switches.insert("--help");
  auto args = Args::Parse(static_cast<int>(arguments.size()), arguments.data(), value_flags, switches);
  if (!args) return ReportError("chat", args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args->positionals().size() > 1) {
    std::fprintf(stderr, "kiln chat: expected at most one MODEL\n%s", kUsage);
    return 2;
  }
  auto checked = GenerateOptionsFromArgs(*args, nullptr, *stops);
  if (!checked) return ReportError("chat", checked.error());
  auto path = ResolveModelPath(*args);
  if (!path) return ReportError("chat", path.error());
  auto load_options = ModelOptionsFromArgs(*args, 4096);
  if (!load_options) return ReportError("chat", load_options.error());

  const auto load_start = std::chrono::steady_clock::now();
  auto model = LoadWithProgress(*path, *load_options);
  if (!model) return ReportError("chat", model.error());
  auto text = LoadModelText(**model);
  if (!text) return ReportError("chat", text.error());
  auto tok = text->RequireTokenizer();
  if (!tok) return ReportError("chat", tok.error());
  // A model without a chat template (the bundled one) chats in plain-text mode, and says so.
  const bool plain = args->Has("--no-chat-template") || !(*tok)->chat_template;
  if (!args->Has("--no-chat-template") && !(*tok)->chat_template) {
    std::fprintf(stderr, "kiln chat: %s has no chat template; the turns are joined as plain text\n", text->model_name.c_str());
  }
  auto session = (*model)->NewSession();
  if (!session) return ReportError("chat", session.error());
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  auto options = GenerateOptionsFromArgs(*args, &*text, *stops);
  if (!options) return ReportError("chat", options.error());
  auto drafter = AttachDrafter(*args, *load_options, **model, *text, *options);
  if (!drafter) return ReportError("chat", drafter.error());
  options->prefill_chunk = load_options->max_tokens;

  Interrupts& interrupts = InstallInterruptHandler();
  options->cancel = &interrupts.cancel;
  options->on_token = [](const GeneratedToken& token) {
    std::fwrite(token.text.data(), 1, token.text.size(), stdout);
    std::fflush(stdout);
  };
  Generator generator(*session, &(*tok)->tokenizer);
  const bool terminal = isatty(STDIN_FILENO);
  const bool verbose = args->Has("--verbose");
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  std::string transcript;  // --no-chat-template: the turns joined as plain text
  auto start_over = [&] {
    messages = nlohmann::ordered_json::array();
    if (args->Has("--system")) messages.push_back({{"role", "system"}, {"content", args->Get("--system")}});
    transcript = args->Has("--system") ? args->Get("--system") + "\n" : "";
  };
  start_over();
  std::optional<Generation> last;
  if (terminal) std::fprintf(stderr, "kiln chat: %s. /reset, /stats, /exit\n", path->c_str());

  std::string line;
  while (ReadLine(terminal, &line)) {
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      start_over();
      generator.Reset();
      std::fputs("(conversation reset)\n", stdout);
      continue;
    }
    if (line == "/stats") {
      if (last) {
        PrintSummary(stdout, load_seconds, *last);
      } else {
        std::printf("load         %.2f s\npeak memory  %s\n", load_seconds, FormatBytes(PeakMemoryBytes()).c_str());
      }
      continue;
    }
    if (line[0] == '/') {
      std::printf("unknown command %s: /reset, /stats, /exit\n", line.c_str());
      continue;
    }
    Result<std::vector<int32_t>> prompt = std::vector<int32_t>{};
    if (plain) {
      transcript += line + "\n";
      prompt = EncodePlain(**tok, transcript);
    } else {
      messages.push_back({{"role", "user"}, {"content", line}});
      prompt = EncodeChat(**tok, messages);
    }
    if (!prompt) return ReportError("chat", prompt.error());
    interrupts.cancel = false;
    interrupts.interrupted = false;
    interrupts.generating = true;
    auto generation = GenerateWithProgress(generator, *prompt, *options, interrupts);
    interrupts.generating = false;
    if (!generation) {
      // Most likely the conversation outgrew the context: say so and let the user go on.
      std::fprintf(stderr, "kiln chat: %s (/reset starts over)\n", generation.error().ToString().c_str());
      if (!plain) messages.erase(messages.size() - 1);
      continue;
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);  // the reply before any summary on stderr
    if (plain) {
      transcript += generation->result.text + "\n";
    } else {
      messages.push_back({{"role", "assistant"}, {"content", generation->result.text}});
    }
    if (verbose) PrintSummary(stderr, load_seconds, *generation);
    last = std::move(*generation);
  }
  if (terminal) std::fputc('\n', stdout);
  return 0;
}

}  // namespace kiln::cli
