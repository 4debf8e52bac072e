// CPU decode and prefill throughput of kiln next to the machine's streaming-read floor.
//
//   kiln_bench [--threads N] [--model DIR]... [--keep DIR] [--batch 1,4,16,64]
//              [--formats bf16,q8_0,q4_0,q4_k,q6_k,f8_e4m3]
//
// Without --model it synthesizes two random-weight Gemma 4 models (bf16) in a temp dir: one the
// size of the test fixtures and one of about 100M parameters (a real layer mix: sliding and full
// layers, head_dim 128/256, k_eq_v). Random weights are fine: speed does not depend on values.
// The floor: a decode step must read every weight once, so tok/s <= read bandwidth / weight
// bytes; the bandwidth is measured here, with wide loads, several accumulators, all threads.
// Weight formats (--formats, default all six; empty skips): a random ~109M-parameter model whose
// rows are whole 256-element blocks, its matrices stored in each format (random_model.h,
// RandomQuantizedModel), decode and prefill as above; floor = bandwidth / that format's bytes.
// Batched decode (--batch, default 1,4,16,64): the model placed once for the largest batch; B
// sequences prefill a 32-token prompt each, then B-token decode steps run (every sequence one
// token); aggregate tok/s = B / median step time. Floor = B x bandwidth / (weight bytes + B x the
// K/V bytes each sequence's attention reads at that length): decode stays bandwidth-bound, so B
// sequences should cost little more than one.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/cpu/simd/dot.h"
#include "compiler/plan_report.h"
#include "core/thread_pool.h"
#include "engine/model_loader.h"
#include "random_model.h"
#include "decode_bytes.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

__attribute__((target("avx512f"))) float SumAvx512(const float* data, int64_t count) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 64 <= count; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(data + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(data + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(data + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(data + i + 48));
  }
  float lanes[16];
  _mm512_storeu_ps(lanes, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

__attribute__((target("avx2"))) float SumAvx2(const float* data, int64_t count) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 32 <= count; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(data + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(data + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(data + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(data + i + 24));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

// Streaming read bandwidth in bytes/s over a 1 GiB buffer of random floats, median of 7.
double MeasureReadBandwidth(ThreadPool& pool) {
  const int64_t count = (int64_t{1} << 30) / 4;
  float* data = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(count) * 4));
  std::mt19937 rng(1);
  for (int64_t i = 0; i < count; ++i) data[i] = static_cast<float>(rng() & 0xff);
  const bool avx512 = __builtin_cpu_supports("avx512f");
  std::vector<double> rates;
  volatile float sink = 0;
  for (int rep = 0; rep < 8; ++rep) {
    std::vector<float> partial(static_cast<size_t>(pool.num_threads()), 0.0f);
    const auto start = Clock::now();
    pool.ParallelFor(pool.num_threads(), [&](int64_t begin, int64_t end) {
      for (int64_t share = begin; share < end; ++share) {
        const int64_t per = count / pool.num_threads() / 64 * 64;
        const float* chunk = data + share * per;
        partial[static_cast<size_t>(share)] = avx512 ? SumAvx512(chunk, per) : SumAvx2(chunk, per);
      }
    });
    const double elapsed = Seconds(start, Clock::now());
    for (float p : partial) sink = sink + p;
    if (rep > 0) rates.push_back(static_cast<double>(count) * 4 / elapsed);  // first pass warms up
  }
  std::free(data);
  return Median(rates);
}

struct Measurement {
  double decode_tokens_per_second = 0, prefill_tokens_per_second = 0;
  int64_t weight_bytes = 0, parameters = 0;
};

// Prefill of a random prompt, median of 3 after a warm-up; then decode_tokens steps, median
// after two warm-up steps.
Result<Measurement> TimeSession(Session& session, int64_t prompt_tokens, int64_t decode_tokens) {
  Measurement result;
  const uint32_t vocab = static_cast<uint32_t>(session.vocab_size());
  std::mt19937 rng(3);
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
  for (int32_t& id : prompt) id = static_cast<int32_t>(rng() % vocab);
  std::vector<double> prefill_times, decode_times;
  std::vector<float> logits(static_cast<size_t>(session.vocab_size()));
  for (int rep = 0; rep < 4; ++rep) {
    session.Reset();
    const auto start = Clock::now();
    TRY(session.Prefill(prompt));
    if (rep > 0) prefill_times.push_back(Seconds(start, Clock::now()));  // rep 0 warms up
  }
  for (int64_t i = 0; i < decode_tokens; ++i) {
    const int32_t token = static_cast<int32_t>(rng() % vocab);
    const auto start = Clock::now();
    TRY(session.StepInto({&token, 1}, false, logits));
    if (i >= 2) decode_times.push_back(Seconds(start, Clock::now()));
  }
  result.prefill_tokens_per_second = static_cast<double>(prompt_tokens) / Median(prefill_times);
  result.decode_tokens_per_second = 1.0 / Median(decode_times);
  return result;
}

Result<Measurement> Measure(const std::string& dir, int threads, int64_t prompt_tokens, int64_t decode_tokens) {
  LoadOptions options;
  options.max_tokens = prompt_tokens;
  options.max_context = prompt_tokens + decode_tokens + 8;
  options.num_threads = threads;
  TRY_ASSIGN(auto model, LoadedModel::Load(dir, options));
  TRY_ASSIGN(Session session, model->NewSession(threads));
  TRY_ASSIGN(Measurement result, TimeSession(session, prompt_tokens, decode_tokens));
  result.weight_bytes = model->program().weight_bytes();
  result.parameters = ParameterCount(model->program());
  return result;
}

// The same random model with its matrices in `dtype` (bench/random_model.h; bf16 keeps them).
Result<Measurement> MeasureFormat(const fs::path& scratch, const nlohmann::json& config, DType dtype, int threads,
                                  int64_t prompt_tokens, int64_t decode_tokens) {
  LoadOptions bounds;
  bounds.max_tokens = prompt_tokens;
  bounds.max_context = prompt_tokens + decode_tokens + 8;
  TRY_ASSIGN(auto model, RandomQuantizedModel::Create(scratch, config, dtype, bounds));
  TRY_ASSIGN(Session session, model->NewSession(threads));
  TRY_ASSIGN(Measurement result, TimeSession(session, prompt_tokens, decode_tokens));
  result.weight_bytes = model->program().weight_bytes();
  result.parameters = ParameterCount(model->program());
  return result;
}

struct BatchMeasurement {
  int64_t batch = 0;
  double tokens_per_second = 0, floor = 0;
};

Result<std::vector<BatchMeasurement>> MeasureBatches(const std::string& dir, int threads, const std::vector<int64_t>& batches,
                                                     double bandwidth) {
  constexpr int64_t kPrompt = 32, kSteps = 24;
  const int64_t largest = *std::max_element(batches.begin(), batches.end());
  LoadOptions options;
  options.max_tokens = std::max<int64_t>(largest, 64);
  options.max_sequences = largest;
  options.max_context = kPrompt + kSteps + 8;
  options.num_threads = threads;
  TRY_ASSIGN(auto model, LoadedModel::Load(dir, options));
  TRY_ASSIGN(auto runner, model->NewRunner());
  const Program& program = model->program();
  const int64_t vocab = runner->vocab_size();
  std::mt19937 rng(5);
  std::vector<BatchMeasurement> results;
  for (int64_t batch : batches) {
    std::vector<std::unique_ptr<Sequence>> sequences;
    std::vector<std::vector<int32_t>> prompts;
    for (int64_t s = 0; s < batch; ++s) {
      sequences.push_back(std::make_unique<Sequence>(runner->pool()));
      std::vector<int32_t> prompt(kPrompt);
      for (int32_t& id : prompt) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
      prompts.push_back(std::move(prompt));
    }
    std::vector<float> logits(static_cast<size_t>(batch * vocab));
    std::vector<BatchEntry> entries;
    // Prompts in steps of up to Tmax tokens (whole prompts: Tmax >= 32).
    for (int64_t s = 0; s < batch;) {
      entries.clear();
      int64_t tokens = 0;
      for (; s < batch && tokens + kPrompt <= program.max_tokens && static_cast<int64_t>(entries.size()) < largest; ++s) {
        entries.push_back({sequences[static_cast<size_t>(s)].get(), prompts[static_cast<size_t>(s)]});
        tokens += kPrompt;
      }
      TRY(runner->Run(entries, std::span<float>(logits.data(), entries.size() * static_cast<size_t>(vocab))));
    }
    std::vector<int32_t> next(static_cast<size_t>(batch), 7);
    entries.clear();
    for (int64_t s = 0; s < batch; ++s) entries.push_back({sequences[static_cast<size_t>(s)].get(), std::span<const int32_t>(&next[static_cast<size_t>(s)], 1)});
    std::vector<double> times;
    for (int64_t step = 0; step < kSteps; ++step) {
      const auto start = Clock::now();
      TRY(runner->Run(entries, logits));
      if (step >= 2) times.push_back(Seconds(start, Clock::now()));
    }
    const int64_t position = kPrompt + kSteps / 2;  // the KV the median step reads
    const double bytes = static_cast<double>(program.weight_bytes() + batch * DecodeCacheBytes(program, position));
    results.push_back({batch, static_cast<double>(batch) / Median(times), static_cast<double>(batch) * bandwidth / bytes});
  }
  return results;
}

int Main(int argc, char** argv) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  std::vector<std::pair<std::string, std::string>> models;  // name, dir
  std::string keep_dir;  // write the synthetic models here and keep them
  std::vector<int64_t> batches = {1, 4, 16, 64};
  std::vector<DType> formats = {DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kF8_E4M3};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--model") == 0 && i + 1 < argc) models.emplace_back(argv[i + 1], argv[i + 1]), ++i;
    else if (std::strcmp(argv[i], "--keep") == 0 && i + 1 < argc) keep_dir = argv[++i];
    else if (std::strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
      batches.clear();
      std::istringstream list(argv[++i]);
      for (std::string item; std::getline(list, item, ',');) batches.push_back(std::stoll(item));
    } else if (std::strcmp(argv[i], "--formats") == 0 && i + 1 < argc) {
      formats.clear();
      std::istringstream list(argv[++i]);
      for (std::string item; std::getline(list, item, ',');) {
        const std::optional<DType> dtype = DTypeFromName(item);
        if (!dtype || (*dtype != DType::kBF16 && !IsBlockDType(*dtype))) {
          std::fprintf(stderr, "kiln_bench: --formats takes bf16, q8_0, q4_0, q4_k, q6_k, f8_e4m3; got %s\n", item.c_str());
          return 2;
        }
        formats.push_back(*dtype);
      }
    } else {
      std::fprintf(stderr, "usage: kiln_bench [--threads N] [--model DIR]... [--keep DIR] [--batch 1,4,16,64] "
                           "[--formats bf16,q8_0,q4_0,q4_k,q6_k,f8_e4m3]\n");
      return 2;
    }
  }
  ThreadPool pool(threads);
  const double bandwidth = MeasureReadBandwidth(pool);
  std::printf("streaming read, %d threads: %.1f GB/s  (dot kernels: %s)\n", threads, bandwidth / 1e9,
              cpu::SelectDotKernels().isa);
  const fs::path root = keep_dir.empty() ? fs::temp_directory_path() / "kiln_bench_models" : fs::path(keep_dir);
  if (models.empty()) {
    const std::pair<const char*, nlohmann::json> synthetic[] = {
        {"fixture-size", GemmaConfig(512, 64, 12, 8, 4, 32, 64, 56, 6)},
        {"100M", GemmaConfig(65536, 640, 10, 4, 1, 128, 256, 2560, 512)},
    };
    for (const auto& [name, config] : synthetic) {
      Status written = WriteRandomModel(root / name, config);
      if (!written.ok()) {
        std::fprintf(stderr, "kiln_bench: %s\n", written.ToString().c_str());
        return 1;
      }
      models.emplace_back(name, (root / name).string());
    }
  }
  std::printf("\n%-14s %10s %10s | %12s %12s %7s | %12s\n", "model", "params", "weights", "decode tok/s",
              "floor tok/s", "ratio", "prefill tok/s");
  for (const auto& [name, dir] : models) {
    auto measured = Measure(dir, threads, /*prompt_tokens=*/128, /*decode_tokens=*/40);
    if (!measured) {
      std::fprintf(stderr, "kiln_bench: %s: %s\n", name.c_str(), measured.error().ToString().c_str());
      return 1;
    }
    const double floor = bandwidth / static_cast<double>(measured->weight_bytes);
    std::printf("%-14s %9.1fM %10s | %12.1f %12.1f %6.0f%% | %12.1f\n", name.c_str(), measured->parameters / 1e6,
                FormatBytes(measured->weight_bytes).c_str(), measured->decode_tokens_per_second, floor,
                100.0 * measured->decode_tokens_per_second / floor, measured->prefill_tokens_per_second);
  }
  std::printf("\nfloor = streaming read bandwidth / bf16 weight bytes (every weight read once per token);\n"
              "decode: median over 38 steps after a 128-token prompt; prefill: 128 tokens, median of 3 after a warm-up.\n");
  if (!formats.empty()) {
    // hidden 768, MLP 2048, attention 4 x 128 / 4 x 256: every matrix row is whole 256-element
    // blocks, so each format stores every matrix (the embedding, tied to the LM head, too).
    const nlohmann::json config = GemmaConfig(65536, 768, 10, 4, 1, 128, 256, 2048, 512);
    std::printf("\ndecode by weight format (100M-q: H 768, 10 layers, vocab 65536; matrices in the format, norms bf16):\n");
    std::printf("%-10s %10s %10s | %12s %12s %7s | %12s\n", "format", "params", "weights", "decode tok/s", "floor tok/s",
                "ratio", "prefill tok/s");
    for (DType dtype : formats) {
      auto measured = MeasureFormat(root / "format-scratch", config, dtype, threads, /*prompt_tokens=*/128, /*decode_tokens=*/40);
      if (!measured) {
        std::fprintf(stderr, "kiln_bench: %s: %s\n", DTypeName(dtype), measured.error().ToString().c_str());
        return 1;
      }
      const double floor = bandwidth / static_cast<double>(measured->weight_bytes);
      std::printf("%-10s %9.1fM %10s | %12.1f %12.1f %6.0f%% | %12.1f\n", DTypeName(dtype), measured->parameters / 1e6,
                  FormatBytes(measured->weight_bytes).c_str(), measured->decode_tokens_per_second, floor,
                  100.0 * measured->decode_tokens_per_second / floor, measured->prefill_tokens_per_second);
    }
    std::printf("floor = streaming read bandwidth / that format's weight bytes; same prompt and steps as above.\n");
  }
  if (!batches.empty()) {
    std::printf("\nbatched decode (one placed model, B sequences, each step one token of every sequence):\n");
    std::printf("%-14s %6s | %14s %14s %7s | %12s\n", "model", "B", "aggregate tok/s", "floor tok/s", "ratio", "per sequence");
    for (const auto& [name, dir] : models) {
      auto measured = MeasureBatches(dir, threads, batches, bandwidth);
      if (!measured) {
        std::fprintf(stderr, "kiln_bench: %s: %s\n", name.c_str(), measured.error().ToString().c_str());
        return 1;
      }
      for (const BatchMeasurement& m : *measured) {
        std::printf("%-14s %6lld | %15.1f %14.1f %6.0f%% | %12.1f\n", name.c_str(), static_cast<long long>(m.batch), m.tokens_per_second,
                    m.floor, 100.0 * m.tokens_per_second / m.floor, m.tokens_per_second / static_cast<double>(m.batch));
      }
    }
    std::printf("batched floor = B x bandwidth / (weight bytes + B x K/V bytes read per sequence), f32 KV;\n"
                "32-token prompts, median of 22 decode steps.\n");
  }
  if (keep_dir.empty()) fs::remove_all(root);
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  // Each row as soon as it is measured, into a pipe or a log too (Ctrl-C keeps the rows printed).
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return kiln::Main(argc, argv);
}
