// kiln_serve_bench: requests/s and aggregate generated tokens/s at several client counts, once
// through kiln serve's HTTP layer (an in-process server on loopback, httplib clients, whole
// /v1/completions replies) and once on kiln::Model directly (Model::Generate from the same number
// of threads), with the same model options and requests.
//
//   kiln_serve_bench [MODEL] [--clients 1,8,32] [--requests-per-client 4] [--max-tokens 32]
//                    [--parallel 8] [--ctx 1024] [--device cpu|cuda] [--shapes CONFIG.json]
//
// --shapes: instead of MODEL's weights, random bf16 weights with the shapes of a config.json (e.g.
// tests/data/gemma-4-12b-config.json), written to a temporary checkpoint and removed at exit;
// the tokenizer, its vocabulary size and the generation config stay MODEL's (the bundled model's
// 8192 tokens: a 262,144-token LM head would emit ids its tokenizer cannot print).
// Every request generates exactly --max-tokens tokens (ignore_eos) at temperature 0 from a short
// prompt that differs per request (so the prefix cache does not skip the prompt), with the
// model's sampling defaults and temperature 0, repetition penalty 1 on both paths.
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/kiln.h"
#include "random_model.h"
#include "server/server.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  std::string model = KILN_DEFAULT_MODEL_DIR;
  std::string device;   // empty: the CPU
  std::string shapes;   // a config.json whose shapes a random-weight model takes (see the top)
  std::vector<int> clients = {1, 8, 32};
  int requests_per_client = 4;
  int64_t max_tokens = 32;
  int64_t parallel = 8;
  int64_t context = 1024;
};

struct Run {
  double seconds = 0;
  int64_t requests = 0, tokens = 0, failures = 0;
  // The model's steps during the run: all, those that ran prompt tokens, and sequences over them.
  int64_t steps = 0, prompt_steps = 0, step_rows = 0;
};

std::string Prompt(int client, int request) {
  return "Request " + std::to_string(client) + "." + std::to_string(request) + ": the jury said that";
}

// `one(client, request)` returns the generated token count, or -1 on failure.
template <typename OneRequest>
Run Measure(const kiln::Model& model, int clients, int per_client, OneRequest one) {
  const kiln::ModelStats before = model.stats();
  std::atomic<int64_t> tokens{0}, failures{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int r = 0; r < per_client; ++r) {
        const int64_t n = one(c, r);
        if (n < 0) failures += 1; else tokens += n;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  Run run;
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  run.requests = static_cast<int64_t>(clients) * per_client;
  run.tokens = tokens;
  run.failures = failures;
  const kiln::ModelStats after = model.stats();
  run.steps = after.steps - before.steps;
  run.prompt_steps = after.prompt_steps - before.prompt_steps;
  run.step_rows = after.step_rows - before.step_rows;
  return run;
}

std::vector<int> ParseList(const char* text) {
  std::vector<int> out;
  for (const char* p = text; *p;) {
    out.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return out;
}

// A random-weight bf16 checkpoint with the shapes of `shapes` (a config.json) and the tokenizer,
// vocabulary size and generation config of `tokenizer_model`, in a fresh temporary directory.
kiln::Result<std::filesystem::path> WriteShapedModel(const std::string& shapes, const std::string& tokenizer_model) {
  namespace fs = std::filesystem;
  auto read_json = [](const fs::path& path) -> kiln::Result<nlohmann::json> {
    std::ifstream in(path);
    nlohmann::json parsed = nlohmann::json::parse(in, nullptr, false);
    if (!in || parsed.is_discarded()) return kiln::Error(kiln::ErrorCode::kInvalidArgument, "cannot read JSON from " + path.string());
    return parsed;
  };
  TRY_ASSIGN(nlohmann::json config, read_json(shapes));
  TRY_ASSIGN(nlohmann::json tokenizer_config, read_json(fs::path(tokenizer_model) / "config.json"));
  nlohmann::json& text = config.contains("text_config") ? config["text_config"] : config;
  text["vocab_size"] = tokenizer_config.contains("text_config") ? tokenizer_config["text_config"]["vocab_size"] : tokenizer_config["vocab_size"];
  const fs::path dir = fs::temp_directory_path() / ("kiln-serve-bench-" + std::to_string(::getpid()));
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return kiln::Error(kiln::ErrorCode::kIo, "cannot create " + dir.string() + ": " + error.message());
  TRY(kiln::WriteRandomModel(dir, config));
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}) {
    if (fs::exists(fs::path(tokenizer_model) / name)) fs::copy_file(fs::path(tokenizer_model) / name, dir / name, fs::copy_options::overwrite_existing, error);
    if (error) return kiln::Error(kiln::ErrorCode::kIo, "cannot copy " + std::string(name) + ": " + error.message());
  }
  return dir;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line as it is printed, even into a file cut short
  Config config;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--clients") && has_value) config.clients = ParseList(argv[++i]);
    else if (!std::strcmp(argv[i], "--requests-per-client") && has_value) config.requests_per_client = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--max-tokens") && has_value) config.max_tokens = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--parallel") && has_value) config.parallel = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--ctx") && has_value) config.context = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--device") && has_value) config.device = argv[++i];
    else if (!std::strcmp(argv[i], "--shapes") && has_value) config.shapes = argv[++i];
    else if (argv[i][0] != '-') config.model = argv[i];
    else {
      std::fprintf(stderr, "usage: kiln_serve_bench [MODEL] [--clients 1,8,32] [--requests-per-client N] [--max-tokens N] [--parallel N] "
                           "[--ctx N] [--device cpu|cuda] [--shapes CONFIG.json]\n");
      return 2;
    }
  }
  std::optional<std::filesystem::path> random_model;
  if (!config.shapes.empty()) {
    auto dir = WriteShapedModel(config.shapes, config.model);
    if (!dir) {
      std::fprintf(stderr, "kiln_serve_bench: %s\n", dir.error().ToString().c_str());
      return 1;
    }
    random_model = *dir;
    config.model = dir->string();
  }
  // Removes the random-weight checkpoint however main returns.
  struct RemoveAtExit {
    std::optional<std::filesystem::path>& dir;
    ~RemoveAtExit() {
      std::error_code ignored;
      if (dir) std::filesystem::remove_all(*dir, ignored);
    }
  } remove_at_exit{random_model};
  kiln::ModelOptions options;
  options.context = config.context;
  options.parallel = config.parallel;
  options.chunk = std::max<int64_t>(256, config.parallel);
  options.device = config.device;
  std::printf("model %s on %s; every client sends %d requests of %lld tokens; parallel %lld\n",
              config.shapes.empty() ? config.model.c_str() : config.shapes.c_str(), config.device.empty() ? "cpu" : config.device.c_str(),
              config.requests_per_client, static_cast<long long>(config.max_tokens), static_cast<long long>(config.parallel));

  // One model at a time (its CPU threads would otherwise compete with the idle one's): first
  // every direct run, then the same model loaded again behind the server for the HTTP runs.
  std::vector<Run> direct_runs, http_runs;
  {
    auto direct = kiln::Model::Load(config.model, options);
    if (!direct) {
      std::fprintf(stderr, "kiln_serve_bench: %s\n", direct.error().message().c_str());
      return 1;
    }
    auto model_request = [&](int c, int r) -> int64_t {
      kiln::GenerationRequest request;
      request.prompt = Prompt(c, r);
      request.max_tokens = config.max_tokens;
      request.ignore_eos = true;
      // What the server sends for {"temperature": 0, "repetition_penalty": 1}: the model's
      // defaults with those two overridden.
      request.sampling = (*direct)->info().default_sampling;
      request.sampling->temperature = 0;
      request.sampling->repetition_penalty = 1;
      auto done = (*direct)->Generate(request);
      return done ? static_cast<int64_t>(done->tokens.size()) : -1;
    };
    Measure(**direct, config.clients.back(), 1, model_request);  // warm-up: first touch of every KV page
    for (int clients : config.clients) direct_runs.push_back(Measure(**direct, clients, config.requests_per_client, model_request));
  }
  {
    auto served = kiln::Model::Load(config.model, options);
    if (!served) {
      std::fprintf(stderr, "kiln_serve_bench: %s\n", served.error().message().c_str());
      return 1;
    }
    kiln::server::ServerOptions server_options;
    server_options.host = "127.0.0.1";
    server_options.port = 0;
    kiln::server::Server server(server_options);
    auto port = server.Start();
    if (!port) {
      std::fprintf(stderr, "kiln_serve_bench: %s\n", port.error().message().c_str());
      return 1;
    }
    const kiln::Model& served_model = **served;  // owned by the server from here on
    server.SetModel(std::move(*served), "bench");
    auto http_request = [&](int c, int r) -> int64_t {
      httplib::Client client("127.0.0.1", *port);
      client.set_read_timeout(600, 0);
      const nlohmann::json body = {{"prompt", Prompt(c, r)}, {"max_tokens", config.max_tokens}, {"ignore_eos", true},
                                   {"temperature", 0}, {"repetition_penalty", 1}};
      auto result = client.Post("/v1/completions", body.dump(), "application/json");
      if (!result || result->status != 200) return -1;
      auto reply = nlohmann::json::parse(result->body, nullptr, false);
      return reply.is_discarded() ? -1 : reply["usage"]["completion_tokens"].get<int64_t>();
    };
    Measure(served_model, config.clients.back(), 1, http_request);
    for (int clients : config.clients) http_runs.push_back(Measure(served_model, clients, config.requests_per_client, http_request));
  }

  // Steps, prompt steps (a prefill ran in them) and the mean batch say whether a path's requests
  // reached the scheduler together or staggered.
  std::printf("| clients | requests | path | seconds | requests/s | tokens/s | failures | steps | prompt steps | mean batch |\n");
  std::printf("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < config.clients.size(); ++i) {
    for (int path = 0; path < 2; ++path) {
      const Run& run = path == 0 ? direct_runs[i] : http_runs[i];
      std::printf("| %d | %lld | %s | %.2f | %.2f | %.1f | %lld | %lld | %lld | %.1f |\n", config.clients[i], static_cast<long long>(run.requests),
                  path == 0 ? "kiln::Model" : "HTTP", run.seconds, run.requests / run.seconds, run.tokens / run.seconds,
                  static_cast<long long>(run.failures), static_cast<long long>(run.steps), static_cast<long long>(run.prompt_steps),
                  run.steps > 0 ? static_cast<double>(run.step_rows) / static_cast<double>(run.steps) : 0.0);
    }
  }
  return 0;
}
