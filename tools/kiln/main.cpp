// kiln: compile and run language models. `kiln help` lists the subcommands.
#include <csignal>
#include <cstdio>
#include <cstring>

#include "artifact/artifact_file.h"

#include "commands.h"
#include "output_paths.h"
#if KILN_HAVE_TOKENIZER
#include "tokenize_command.h"
#include "tokenizer_source.h"
#endif

namespace {

const char kHelp[] =
    "kiln - an ahead-of-time compiling LLM runtime (Gemma 4)\n"
    "\n"
    "usage: kiln <command> [options]\n"
    "  run [MODEL] --prompt TEXT         generate a continuation (streams text, then a summary)\n"
    "  chat [MODEL]                      interactive multi-turn chat\n"
    "  batch [MODEL] --prompts F.jsonl   many prompts at once through the scheduler (JSON lines out)\n"
    "  serve [MODEL] [--port 8080]       OpenAI-compatible HTTP server (chat, completions, SSE)\n"
    "  bench [MODEL] [-p 512] [-g 128]   prompt and generation throughput (llama-bench style)\n"
    "  inspect MODEL [--plan]            config, weights, KV cache and memory plans\n"
    "  logits MODEL --tokens .. --out F  logits of every position as a .npy file\n"
    "  compile MODEL -o OUT.kiln         compile ahead of time into one file\n"
    "  verify OUT.kiln                   check a compiled file's checksums and plans\n"
#if KILN_HAVE_TOKENIZER
    "  tokenize MODEL TEXT               token ids and pieces\n"
    "  detokenize MODEL ID...            text of token ids\n"
    "  perplexity MODEL -f FILE          perplexity of a text file (llama.cpp's chunked definition)\n"
#endif
    "  help, -h, --help                  this message; --version: kiln's version\n"
    "\n"
    "MODEL is a Hugging Face checkpoint directory or a .kiln file; inspect also takes a bare\n"
    "config.json.\n"
    "Run `kiln <command> --help` for a command's options.\n";

int RunCommand(int argc, char** argv) {
  const char* command = argv[1];
  if (std::strcmp(command, "run") == 0) return kiln::cli::RunRun(argc - 1, argv + 1);
  if (std::strcmp(command, "chat") == 0) return kiln::cli::RunChat(argc - 1, argv + 1);
  if (std::strcmp(command, "serve") == 0) return kiln::cli::RunServe(argc - 1, argv + 1);
  if (std::strcmp(command, "bench") == 0) return kiln::cli::RunBench(argc - 1, argv + 1);
  if (std::strcmp(command, "batch") == 0) return kiln::cli::RunBatch(argc - 1, argv + 1);
  if (std::strcmp(command, "inspect") == 0) return kiln::cli::RunInspect(argc - 1, argv + 1);
  if (std::strcmp(command, "logits") == 0) return kiln::cli::RunLogits(argc - 1, argv + 1);
  if (std::strcmp(command, "compile") == 0) return kiln::cli::RunCompile(argc - 1, argv + 1);
  if (std::strcmp(command, "verify") == 0) return kiln::cli::RunVerify(argc - 1, argv + 1);
#if KILN_HAVE_TOKENIZER
  if (std::strcmp(command, "tokenize") == 0) return RunTokenizeCommand(argc - 1, argv + 1, kiln::cli::LoadTokenizerOf);
  if (std::strcmp(command, "detokenize") == 0) return RunDetokenizeCommand(argc - 1, argv + 1, kiln::cli::LoadTokenizerOf);
  if (std::strcmp(command, "perplexity") == 0) return kiln::cli::RunPerplexity(argc - 1, argv + 1);
#endif
  std::fprintf(stderr, "kiln: unknown command '%s'\n\n%s", command, kHelp);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "version") == 0)) {
    std::printf("%s (artifact format %llu, %s)\n", kiln::kProducerVersion, static_cast<unsigned long long>(kiln::kArtifactFormatVersion),
                KILN_HAVE_CUDA_BACKEND ? "CPU and CUDA backends" : "CPU backend");
    return 0;
  }
  if (argc < 2 || std::strcmp(argv[1], "help") == 0 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kHelp, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  // A closed pipe is a write error (EPIPE) reported like any other, not a silent death.
  std::signal(SIGPIPE, SIG_IGN);
  const int status = RunCommand(argc, argv);
  // Text lost to a full disk or a closed pipe is a failure even when the command succeeded.
  kiln::Status flushed = kiln::cli::FlushStandardOutput();
  if (!flushed.ok()) {
    std::fprintf(stderr, "kiln %s: %s\n", argv[1], flushed.error().message().c_str());
    return status != 0 ? status : 1;
  }
  return status;
}
