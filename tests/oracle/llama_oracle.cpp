// llama.cpp as a reference for kiln's GGUF and block-format support: a small program against the
// prebuilt libllama of the node-llama-cpp@3.21.1 npm package (llama.cpp commit 80fb11ac), built by
// scripts/llama_cpp_oracle.sh and never by the CMake build (libllama is an npm artifact).
//
//   llama_oracle logits MODEL.gguf --tokens ID,ID,... --out F.npy [--threads N] [--last N]
//       float32 logits [positions, vocab] as .npy: one llama_decode of the whole prompt on the
//       CPU, flash attention off, f32 K and V caches, so that only llama.cpp's own arithmetic
//       (its fp16 GELU table, its Q8 activation rounding) separates it from an exact forward.
//   llama_oracle quantize IN.gguf OUT.gguf TYPE [--threads N]
//       llama_model_quantize with its default mix for TYPE (q8_0, q4_0, q4_k_m, q6_k, bf16, f16),
//       i.e. what llama-quantize writes (a Q4_0 file keeps its token embedding in Q6_K, ...).
//   llama_oracle tokenize MODEL.gguf TEXTFILE
//       the ids llama.cpp gives the file's text (BOS added as the vocabulary says), comma-separated.
//   llama_oracle bench MODEL.gguf [-p 128] [-g 65] [-r 5] [--threads N] [--seed S]
//       decode throughput measured like `kiln bench --parallel 1`: prefill a synthetic -p token
//       prompt (BOS, then ids from std::mt19937_64(seed), the same prompt kiln bench draws), then
//       -g greedy tokens one llama_decode at a time; the first comes from the prefill, so the rate
//       is (g - 1) / decode seconds. One warm-up run, then -r runs; prints the median and range.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "llama.h"

namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "llama_oracle: %s\n", message.c_str());
  std::exit(1);
}

bool g_verbose = false;

void Log(enum ggml_log_level level, const char* text, void*) {
  if (g_verbose || level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

// Flags after the positionals: "--name value" pairs, or "-p value".
struct Flags {
  std::vector<std::string> positionals;
  std::map<std::string, std::string> values;

  static Flags Parse(int argc, char** argv, int first) {
    Flags flags;
    for (int i = first; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--verbose") {
        g_verbose = true;
      } else if (arg.size() > 1 && arg[0] == '-') {
        if (i + 1 >= argc) Die(arg + " needs a value");
        flags.values[arg] = argv[++i];
      } else {
        flags.positionals.push_back(arg);
      }
    }
    return flags;
  }
  std::string Get(const std::string& name, const std::string& fallback) const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
  }
  int Int(const std::string& name, int fallback) const { return std::atoi(Get(name, std::to_string(fallback)).c_str()); }
};

std::vector<llama_token> ParseTokens(const std::string& list) {
  std::vector<llama_token> ids;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) ids.push_back(static_cast<llama_token>(std::stol(item)));
  }
  if (ids.empty()) Die("no token ids in --tokens");
  return ids;
}

// The CPU backends ship as one shared library per instruction-set level next to libllama;
// ggml picks the best this machine runs. Looked up from libllama's own location, so the
// program works from any directory.
void LoadBackends() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&llama_backend_init), &info) == 0 || info.dli_fname == nullptr) {
    Die("cannot locate libllama");
  }
  std::string directory = info.dli_fname;
  directory = directory.substr(0, directory.find_last_of('/'));
  ggml_backend_load_all_from_path(directory.c_str());
  llama_backend_init();
}

llama_model* LoadModel(const std::string& path) {
  llama_model_params params = llama_model_default_params();
  params.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(path.c_str(), params);
  if (model == nullptr) Die("cannot load " + path);
  return model;
}

llama_context* NewContext(llama_model* model, int context, int batch, int threads) {
  llama_context_params params = llama_context_default_params();
  params.n_ctx = static_cast<uint32_t>(context);
  params.n_batch = static_cast<uint32_t>(batch);
  params.n_ubatch = static_cast<uint32_t>(batch);
  params.n_seq_max = 1;
  params.n_threads = threads;
  params.n_threads_batch = threads;
  params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  params.type_k = GGML_TYPE_F32;
  params.type_v = GGML_TYPE_F32;
  params.offload_kqv = false;
  params.no_perf = true;
  llama_context* context_handle = llama_init_from_model(model, params);
  if (context_handle == nullptr) Die("cannot create a context");
  return context_handle;
}

// One sequence, positions start..start+n-1; every position's logits when all_logits.
void FillBatch(llama_batch& batch, const llama_token* ids, int n, int start, bool all_logits) {
  batch.n_tokens = n;
  for (int i = 0; i < n; ++i) {
    batch.token[i] = ids[i];
    batch.pos[i] = start + i;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = all_logits || i == n - 1;
  }
}

void WriteNpy(const std::string& path, const std::vector<float>& values, int64_t rows, int64_t columns) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(columns) + "), }";
  // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64 and
  // ended by a newline, as format 1.0 asks.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t length = static_cast<uint16_t>(header.size());
  const char length_bytes[2] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8)};
  out.write(length_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
  if (!out) Die("cannot write " + path);
}

int RunLogits(const Flags& flags) {
  if (flags.positionals.size() != 1 || flags.Get("--tokens", "").empty() || flags.Get("--out", "").empty()) {
    Die("usage: logits MODEL.gguf --tokens ID,... --out F.npy [--threads N] [--last N]");
  }
  const std::vector<llama_token> ids = ParseTokens(flags.Get("--tokens", ""));
  const int n = static_cast<int>(ids.size());
  const int last = std::min(n, flags.Int("--last", n));
  llama_model* model = LoadModel(flags.positionals[0]);
  llama_context* context = NewContext(model, n, n, flags.Int("--threads", 1));
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  llama_batch batch = llama_batch_init(n, 0, 1);
  FillBatch(batch, ids.data(), n, 0, true);
  if (llama_decode(context, batch) != 0) Die("llama_decode failed");
  std::vector<float> logits(static_cast<size_t>(last) * static_cast<size_t>(vocab));
  for (int row = 0; row < last; ++row) {
    const float* source = llama_get_logits_ith(context, n - last + row);
    if (source == nullptr) Die("no logits for position " + std::to_string(n - last + row));
    std::memcpy(logits.data() + static_cast<size_t>(row) * static_cast<size_t>(vocab), source, sizeof(float) * static_cast<size_t>(vocab));
  }
  WriteNpy(flags.Get("--out", ""), logits, last, vocab);
  std::fprintf(stderr, "llama_oracle: wrote [%d, %d] float32 to %s\n", last, vocab, flags.Get("--out", "").c_str());
  llama_batch_free(batch);
  llama_free(context);
  llama_model_free(model);
  return 0;
}

int RunQuantize(const Flags& flags) {
  if (flags.positionals.size() != 3) Die("usage: quantize IN.gguf OUT.gguf TYPE");
  static const std::map<std::string, llama_ftype> kTypes = {
      {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0}, {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0}, {"q4_k_m", LLAMA_FTYPE_MOSTLY_Q4_K_M},
      {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K}, {"bf16", LLAMA_FTYPE_MOSTLY_BF16}, {"f16", LLAMA_FTYPE_MOSTLY_F16}};
  auto type = kTypes.find(flags.positionals[2]);
  if (type == kTypes.end()) Die("unknown type " + flags.positionals[2] + " (q8_0, q4_0, q4_k_m, q6_k, bf16, f16)");
  llama_model_quantize_params params = llama_model_quantize_default_params();
  params.ftype = type->second;
  params.nthread = flags.Int("--threads", 1);
  if (llama_model_quantize(flags.positionals[0].c_str(), flags.positionals[1].c_str(), &params) != 0) {
    Die("llama_model_quantize failed for " + flags.positionals[0]);
  }
  return 0;
}

int RunTokenize(const Flags& flags) {
  if (flags.positionals.size() != 2) Die("usage: tokenize MODEL.gguf TEXTFILE");
  std::ifstream in(flags.positionals[1], std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const std::string content = text.str();
  llama_model_params params = llama_model_default_params();
  params.vocab_only = true;
  llama_model* model = llama_model_load_from_file(flags.positionals[0].c_str(), params);
  if (model == nullptr) Die("cannot load " + flags.positionals[0]);
  const llama_vocab* vocab = llama_model_get_vocab(model);
  std::vector<llama_token> ids(content.size() + 8);
  const int n = llama_tokenize(vocab, content.data(), static_cast<int32_t>(content.size()), ids.data(),
                               static_cast<int32_t>(ids.size()), /*add_special=*/true, /*parse_special=*/false);
  if (n < 0) Die("llama_tokenize failed");
  for (int i = 0; i < n; ++i) std::printf(i ? ",%d" : "%d", ids[static_cast<size_t>(i)]);
  std::printf("\n");
  llama_model_free(model);
  return 0;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n == 0 ? 0 : (n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2);
}

int RunBench(const Flags& flags) {
  if (flags.positionals.size() != 1) Die("usage: bench MODEL.gguf [-p 128] [-g 65] [-r 5] [--threads N] [--seed S]");
  const int prompt_length = flags.Int("-p", 128), generate = flags.Int("-g", 65), repetitions = flags.Int("-r", 5);
  const int threads = flags.Int("--threads", 1);
  const uint64_t seed = std::strtoull(flags.Get("--seed", "0").c_str(), nullptr, 10);
  if (prompt_length < 1 || generate < 2 || repetitions < 1) Die("need -p >= 1, -g >= 2, -r >= 1");
  llama_model* model = LoadModel(flags.positionals[0]);
  llama_context* context = NewContext(model, prompt_length + generate, prompt_length, threads);
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  // kiln bench's synthetic prompt: BOS (2), then ids uniform in [3, vocab) from the seed.
  std::mt19937_64 engine(seed);
  std::vector<llama_token> prompt(static_cast<size_t>(prompt_length));
  for (size_t i = 0; i < prompt.size(); ++i) {
    prompt[i] = i == 0 ? 2 : static_cast<llama_token>(3 + engine() % static_cast<uint64_t>(vocab - 3));
  }
  llama_batch batch = llama_batch_init(prompt_length, 0, 1);
  auto argmax = [&](const float* row) {
    return static_cast<llama_token>(std::max_element(row, row + vocab) - row);
  };
  using Clock = std::chrono::steady_clock;
  std::vector<double> prefill_rates, decode_rates;
  for (int run = 0; run <= repetitions; ++run) {
    llama_memory_clear(llama_get_memory(context), true);
    const auto start = Clock::now();
    FillBatch(batch, prompt.data(), prompt_length, 0, false);
    if (llama_decode(context, batch) != 0) Die("llama_decode failed on the prompt");
    llama_token next = argmax(llama_get_logits_ith(context, -1));
    const auto decode_start = Clock::now();
    for (int step = 1; step < generate; ++step) {
      FillBatch(batch, &next, 1, prompt_length + step - 1, true);
      if (llama_decode(context, batch) != 0) Die("llama_decode failed at step " + std::to_string(step));
      next = argmax(llama_get_logits_ith(context, -1));
    }
    const auto end = Clock::now();
    if (run == 0) continue;  // warm-up
    prefill_rates.push_back(prompt_length / std::chrono::duration<double>(decode_start - start).count());
    decode_rates.push_back((generate - 1) / std::chrono::duration<double>(end - decode_start).count());
  }
  std::printf("llama.cpp %s threads %d: pp%d %.1f t/s (%.1f..%.1f), tg%d %.1f t/s (%.1f..%.1f)\n", flags.positionals[0].c_str(),
              threads, prompt_length, Median(prefill_rates), *std::min_element(prefill_rates.begin(), prefill_rates.end()),
              *std::max_element(prefill_rates.begin(), prefill_rates.end()), generate, Median(decode_rates),
              *std::min_element(decode_rates.begin(), decode_rates.end()), *std::max_element(decode_rates.begin(), decode_rates.end()));
  llama_batch_free(batch);
  llama_free(context);
  llama_model_free(model);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("usage: llama_oracle logits|quantize|tokenize|bench ...");
  const std::string command = argv[1];
  const Flags flags = Flags::Parse(argc, argv, 2);
  llama_log_set(Log, nullptr);
  LoadBackends();
  int status = 1;
  if (command == "logits") {
    status = RunLogits(flags);
  } else if (command == "quantize") {
    status = RunQuantize(flags);
  } else if (command == "tokenize") {
    status = RunTokenize(flags);
  } else if (command == "bench") {
    status = RunBench(flags);
  } else {
    Die("unknown command " + command);
  }
  llama_backend_free();
  return status;
}
