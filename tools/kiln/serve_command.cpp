// kiln serve [MODEL] [--host 127.0.0.1] [--port 8080] [--api-key K | --api-key-file F]
//            [--parallel N] [--ctx N] [--chunk N] [--threads N] [--device cpu|cuda]
//            [--spec-type ngram|draft|mtp] [--draft MODEL] [--draft-max N]
// An OpenAI-compatible HTTP server (src/server/server.h) over one model. The socket listens
// before the model loads (/health answers 503 "Loading model" until then); SIGINT or SIGTERM
// stops accepting, lets the requests in flight finish, and exits with status 0.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli_args.h"
#include "commands.h"
#include "generation_flags.h"
#include "kiln/kiln.h"
#include "model_options.h"
#include "server/server.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln serve [MODEL] [options]\n"
    "  An OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions, /v1/models,\n"
    "  /health, /metrics, /tokenize, /detokenize, and Ollama's /api/chat, /api/generate, /api/tags,\n"
    "  /api/ps, /api/show, /api/version. Without MODEL it serves the bundled model.\n"
    "  --host ADDR          address to listen on (default 127.0.0.1: this machine only)\n"
    "  --port N             port (default 8080; 0 picks a free one)\n"
    "  --api-key KEY        require 'Authorization: Bearer KEY' (not for /health)\n"
    "  --api-key-file F     the same, the key read from the first line of F\n"
    "  --cors ORIGIN        let browser pages from ORIGIN ('*': any) call the API\n"
    "  --parallel N         sequences generated at once (default 4)\n"
    "  --ctx N --chunk N --threads N --device cpu|cuda --kv-cache f32|bf16\n"
    "  --quant q8_0|q4_0|q4_k_m|q6_k|fp8  weights quantized by that recipe (docs/quantization.md)\n"
    "  --spec-type ngram    speculative decoding by prompt lookup for every request (same output;\n"
    "                       docs/speculative.md)   --draft-max N  tokens drafted per step (default 8)\n"
    "  --spec-type mtp      the same with the model's MTP assistant: --draft, or the one in MODEL/mtp\n"
    "  --draft MODEL        speculative decoding with a smaller model of the same tokenizer drafting\n"
    "                       for every request (--spec-type draft; loaded with the flags above), or\n"
    "                       with the model's Gemma 4 MTP assistant (--spec-type mtp, told by its config)\n";

// The id /v1/models reports: the directory's name, or the file's stem for a .kiln file.
std::string ModelName(const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return std::filesystem::is_directory(p) ? p.filename().string() : p.stem().string();
}

Result<std::string> ApiKey(const Args& args) {
  if (args.Has("--api-key") && args.Has("--api-key-file")) {
    return Error(ErrorCode::kInvalidArgument, "give --api-key or --api-key-file, not both");
  }
  if (!args.Has("--api-key-file")) return args.Get("--api-key");
  std::ifstream in(args.Get("--api-key-file"));
  std::string key;
  if (!in || !std::getline(in, key)) return Error(ErrorCode::kIo, "cannot read the API key from " + args.Get("--api-key-file"));
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) key.pop_back();
  if (key.empty()) return Error(ErrorCode::kInvalidArgument, "the API key file " + args.Get("--api-key-file") + " is empty");
  return key;
}

}  // namespace

int RunServe(int argc, char** argv) {
  std::set<std::string> value_flags = {"--host", "--port", "--api-key", "--api-key-file", "--cors", "--parallel", "--ctx",
                                       "--chunk", "--threads", "--device", "--kv-cache", "--spec-type", "--draft-max",
                                       "--draft", "--quant"};
  auto args = Args::Parse(argc, argv, value_flags, {"--help"});
  if (!args) return ReportError("serve", args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args->positionals().size() > 1) {
    std::fprintf(stderr, "kiln serve: give at most one MODEL\n%s", kUsage);
    return 2;
  }
  auto port = args->GetInt("--port", 8080, 0, 65535);
  if (!port) return ReportError("serve", port.error());
  auto key = ApiKey(*args);
  if (!key) return ReportError("serve", key.error());
  auto load_options = ModelOptionsFromArgs(*args, 4096);
  if (!load_options) return ReportError("serve", load_options.error());
  auto path = ResolveModelPath(*args);
  if (!path) return ReportError("serve", path.error());
  ModelOptions options;
  options.device = load_options->device;
  options.context = load_options->max_context;
  options.chunk = load_options->max_tokens;
  options.parallel = args->Has("--parallel") ? load_options->max_sequences : std::min<int64_t>(4, load_options->max_tokens);
  options.threads = load_options->num_threads;
  options.kv_cache = args->Get("--kv-cache");
  options.quant = args->Get("--quant");
  auto speculative = SpeculativeOptionsFromArgs(*args);
  if (!speculative) return ReportError("serve", speculative.error());
  if (speculative->enabled()) {
    options.speculative = SpeculativeTypeName(speculative->type);
    if (speculative->type == SpeculativeType::kDraft) options.draft_model = args->Get("--draft");
    if (speculative->type == SpeculativeType::kMtp) options.draft_model = load_options->assistant;
  }
  options.draft_max = speculative->draft_max;

  // SIGINT and SIGTERM are blocked in every thread (the server's threads inherit the mask) and
  // taken by sigwait below, so a signal never interrupts a request half written.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  server::ServerOptions server_options;
  server_options.host = args->Get("--host", "127.0.0.1");
  server_options.port = static_cast<int>(*port);
  server_options.api_key = *key;
  server_options.cors_origin = args->Get("--cors");
  server::Server server(server_options);
  auto bound = server.Start();
  if (!bound) return ReportError("serve", bound.error());
  std::fprintf(stderr, "kiln serve: listening on http://%s:%d\n", server_options.host.c_str(), *bound);

  // Loading runs beside the signal wait: a signal during the load ends the process at once
  // (nothing is in flight yet).
  std::atomic<bool> loaded{false};
  std::thread loader([&] {
    auto model = Model::Load(*path, options);
    if (!model) {
      ReportError("serve", model.error());
      std::_Exit(1);
    }
    const ModelInfo info = (*model)->info();
    server.SetModel(std::move(*model), ModelName(*path));
    loaded = true;
    std::fprintf(stderr, "kiln serve: %s ready (%s, context %lld, %lld parallel%s)\n", ModelName(*path).c_str(), info.target.c_str(),
                 static_cast<long long>(info.context), static_cast<long long>(info.parallel),
                 options.draft_model.empty() ? "" : (", draft model " + options.draft_model).c_str());
  });
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  if (!loaded) {
    std::fprintf(stderr, "kiln serve: stopped while loading\n");
    std::_Exit(0);
  }
  loader.join();
  std::fprintf(stderr, "kiln serve: stopping (finishing requests in flight)\n");
  server.Stop();
  return 0;
}

}  // namespace kiln::cli
