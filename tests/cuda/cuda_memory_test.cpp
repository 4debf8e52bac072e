// Many sequences on one placed model cost their KV and nothing else, measured on the card:
// the first 6 layers of the real Gemma 4 12B config (random bf16 weights, 2.7 GB of them)
// placed for 2, then for 64 sequences; cudaMemGetInfo around each placement against the plan
// (weights once + the KV pool + arena + other), and a decode step of all 64 sequences at the
// full context that takes no further memory. Skipped without a usable CUDA device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_device.h"
#include "models/model_family.h"
#include "runtime/runner.h"

namespace kiln {
namespace {

constexpr int64_t kContext = 4096;
constexpr int64_t kChunk = 64;

Result<Program> Compile(const Backend& backend, int64_t sequences) {
  TRY_ASSIGN(auto architecture, LoadArchitecture(std::string(KILN_TEST_DATA_DIR) + "/gemma-4-12b-config.json"));
  TRY_ASSIGN(architecture, architecture->KeepLayers(6));
  TRY_ASSIGN(Graph graph, architecture->BuildGraph());
  std::vector<StepSpec> steps;
  steps.push_back({"decode", graph, sequences, sequences});
  steps.push_back({"prefill", std::move(graph), kChunk, sequences});
  CompileOptions options;
  options.max_tokens = kChunk;
  options.max_sequences = sequences;
  options.max_context = kContext;
  WeightLookup lookup = [](const Value& expected) -> Result<WeightSpec> {
    WeightSpec spec{expected.name, DType::kBF16, {}};
    for (const Dim& d : expected.shape.dims) spec.shape.push_back(d.value);
    return spec;
  };
  return CompileProgram(std::move(steps), backend, lookup, options);
}

int64_t FreeBytes() {
  size_t free = 0, total = 0;
  cudaDeviceSynchronize();
  cudaMemGetInfo(&free, &total);
  return static_cast<int64_t>(free);
}

struct Placed {
  std::unique_ptr<Runner> runner;
  int64_t taken = 0;
  MemoryReport planned;
};

Placed Place(const Program& program, CudaBackend& backend, int64_t sequences) {
  std::vector<WeightView> views;
  for (const WeightBinding& binding : program.weights) views.push_back({nullptr, binding.dtype, binding.size_bytes()});
  RunnerOptions options;
  options.random_weights = true;
  options.kv_pool = KvPoolSize::ForSequences(program, sequences);
  Placed placed;
  placed.planned = backend.PlanMemory(program, options.kv_pool);
  const int64_t before = FreeBytes();
  auto runner = Runner::Create(program, backend, std::move(views), options);
  EXPECT_TRUE(runner.has_value()) << runner.error().ToString();
  if (!runner.has_value()) return placed;
  placed.taken = before - FreeBytes();
  placed.runner = std::move(*runner);
  return placed;
}

TEST(CudaMemoryTest, SequencesCostTheirKvAndNothingElse) {
  auto device = cuda::ProbeCudaDevice(0);
  if (!device) GTEST_SKIP() << device.error().message();
  CudaBackend backend;
  auto program = Compile(backend, 64);
  ASSERT_TRUE(program.has_value()) << program.error().ToString();

  Placed two = Place(*program, backend, 2);
  ASSERT_TRUE(two.runner);
  const int64_t taken_two = two.taken;
  const MemoryReport plan_two = two.planned;
  two.runner.reset();

  Placed many = Place(*program, backend, 64);
  ASSERT_TRUE(many.runner);
  std::printf("weights %.3f GB; 2 sequences: taken %.3f GB, planned %.3f GB (KV %.3f GB); 64 sequences: taken %.3f GB, planned %.3f GB (KV %.3f GB)\n",
              static_cast<double>(many.planned.weight_bytes) / 1e9, static_cast<double>(taken_two) / 1e9,
              static_cast<double>(plan_two.total()) / 1e9, static_cast<double>(plan_two.cache_bytes) / 1e9,
              static_cast<double>(many.taken) / 1e9, static_cast<double>(many.planned.total()) / 1e9,
              static_cast<double>(many.planned.cache_bytes) / 1e9);
  // The weights are placed once: both placements take their plan (within 5%), and 62 more
  // sequences take 62 more sequences' KV pool and nothing else.
  EXPECT_NEAR(static_cast<double>(taken_two), static_cast<double>(plan_two.total()), 0.05 * static_cast<double>(plan_two.total()));
  EXPECT_NEAR(static_cast<double>(many.taken), static_cast<double>(many.planned.total()), 0.05 * static_cast<double>(many.planned.total()));
  const double extra_kv = static_cast<double>(many.planned.cache_bytes - plan_two.cache_bytes);
  EXPECT_NEAR(static_cast<double>(many.taken - taken_two), extra_kv, 0.05 * extra_kv + 64e6);
  EXPECT_LT(static_cast<double>(many.taken), static_cast<double>(many.planned.weight_bytes) * 2.0);

  // 64 sequences at the end of the full context, one decode step of all of them: nothing more
  // is taken from the card (the step inputs and arena were sized at the bounds).
  std::vector<std::unique_ptr<Sequence>> sequences;
  for (int i = 0; i < 64; ++i) {
    sequences.push_back(std::make_unique<Sequence>(many.runner->pool()));
    ASSERT_TRUE(sequences.back()->Reserve(kContext).ok());
    sequences.back()->StartAt(kContext - 1);
  }
  std::vector<int32_t> tokens(64, 5);
  std::vector<BatchEntry> batch;
  for (int i = 0; i < 64; ++i) batch.push_back({sequences[static_cast<size_t>(i)].get(), std::span<const int32_t>(&tokens[static_cast<size_t>(i)], 1)});
  std::vector<float> logits(static_cast<size_t>(64 * many.runner->vocab_size()));
  const int64_t before_step = FreeBytes();
  ASSERT_TRUE(many.runner->Run(batch, logits).ok());
  EXPECT_LE(before_step - FreeBytes(), int64_t{64} << 20) << "a step took device memory";
}

}  // namespace
}  // namespace kiln
