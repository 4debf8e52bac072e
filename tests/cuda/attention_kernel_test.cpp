// The tensor-core prefill attention (attention_prefill.cuh) against the reference
// LaunchAttention (kernels.cuh) on random queries and a random bf16 cache: head_dim 16..512,
// grouped-query ratios, full and sliding windows, linear and ring caches, first chunk and a later
// one. Also prints both kernels' times at Gemma 4 12B shapes. Skipped, with the reason, on a
// machine without a usable CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_device.h"
#include "backends/cuda/kernels/attention_decode.cuh"
#include "backends/cuda/kernels/attention_prefill.cuh"
#include "backends/cuda/kernels/kernels.cuh"

namespace kiln {
namespace {

// Inputs are uniform in [-1, 1] and scale = 3 / sqrt(head_dim), so scores have a standard deviation
// near 1 and outputs are convex combinations of values in [-1, 1]. The prefill kernel rounds Q to
// bf16 (relative error <= 2^-9, which moves a score by ~1e-3) and P to bf16 (each weight off by
// <= 2^-9 relative), while the reference keeps Q and P in f32: both give errors around 1e-3 on an
// output. 2e-2 leaves room for that and is still far below what a wrong mask, scale or head
// mapping does (ToleranceSeesAOneKeyShiftOfTheWindow checks that such a bug fails this bound).
constexpr float kTolerance = 2e-2f;

// Round to nearest even, as __float2bfloat16_rn; NaN stays NaN.
uint16_t ToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if (std::isnan(value)) return 0x7fc0;
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

float FromBf16(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return result;
}

template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : count_(host.size()) {
    EXPECT_EQ(cudaMalloc(&data_, count_ * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return data_; }
  std::vector<T> ToHost() const {
    std::vector<T> host(count_);
    EXPECT_EQ(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }

 private:
  size_t count_ = 0;
  T* data_ = nullptr;
};

struct Shape {
  int64_t tokens, heads, kv_heads, head_dim, window, first_position;
  bool ring;
  int64_t block_size = 16;
  std::string ToString() const {
    return "tokens=" + std::to_string(tokens) + " heads=" + std::to_string(heads) + "/" + std::to_string(kv_heads) +
           " head_dim=" + std::to_string(head_dim) + " window=" + std::to_string(window) +
           " first_position=" + std::to_string(first_position) + (ring ? " ring" : " linear") +
           " block=" + std::to_string(block_size);
  }
};

// One sequence's tokens in a step: a chunk at consecutive positions.
struct Span {
  int64_t first_position, tokens;
};

// One attention problem on the device, in both cache formats: the bf16 pool the prefill kernel
// reads and the same values widened to f32 for the reference. The cache is paged as the backend
// pages it (KvPages): each sequence's slots live in blocks of block_size rows, scattered over a
// pool in shuffled order, with spare blocks nobody owns (NaN, like unwritten slots).
class Problem {
 public:
  Problem(const Shape& shape, uint32_t seed) : Problem(shape, {{shape.first_position, shape.tokens}}, seed) {}
  Problem(const Shape& shape, const std::vector<Span>& spans, uint32_t seed)
      : shape_(shape),
        spans_(spans),
        tokens_(TotalTokens(spans)),
        capacity_(Capacity(shape, spans)),
        blocks_per_sequence_((capacity_ + shape.block_size - 1) / shape.block_size),
        q_(RandomQueries(shape, tokens_, seed)),
        positions_(Positions(spans)),
        sequences_(Sequences(spans)),
        runs_(Runs(spans)),
        tables_(Tables(spans.size(), blocks_per_sequence_, seed + 3)),
        k_bf16_(RandomPool(seed + 1)),
        v_bf16_(RandomPool(seed + 2)),
        k_f32_(Widen(k_bf16_)),
        v_f32_(Widen(v_bf16_)),
        k_(k_bf16_),
        v_(v_bf16_),
        k_reference_(k_f32_),
        v_reference_(v_f32_),
        q_device_(q_),
        positions_device_(positions_),
        sequences_device_(sequences_),
        runs_device_(runs_),
        tables_device_(tables_),
        out_(std::vector<float>(q_.size(), 0.0f)) {}

  float scale() const { return 3.0f / std::sqrt(static_cast<float>(shape_.head_dim)); }
  int64_t tokens() const { return tokens_; }

  cuda::KvPages Pages() const {
    cuda::KvPages pages;
    pages.block_tables = tables_device_.get();
    pages.table_stride = blocks_per_sequence_;
    pages.table_offset = 0;
    pages.block_size = static_cast<int32_t>(shape_.block_size);
    pages.capacity = capacity_;
    pages.ring = shape_.ring;
    return pages;
  }

  cudaError_t RunPrefill() {
    return cuda::LaunchPrefillAttention(q_device_.get(), positions_device_.get(), sequences_device_.get(), runs_device_.get(),
                                        static_cast<int64_t>(spans_.size()), tokens_, shape_.heads, shape_.kv_heads,
                                        shape_.head_dim, shape_.window, scale(),
                                        reinterpret_cast<const __nv_bfloat16*>(k_.get()),
                                        reinterpret_cast<const __nv_bfloat16*>(v_.get()), Pages(), out_.get(), nullptr);
  }
  cudaError_t RunReference(int64_t window) {
    return cuda::LaunchAttention(q_device_.get(), positions_device_.get(), sequences_device_.get(), tokens_, shape_.heads,
                                 shape_.kv_heads, shape_.head_dim, window, scale(), k_reference_.get(), v_reference_.get(),
                                 cuda::WeightType::kF32, Pages(), out_.get(), nullptr);
  }
  // Split-K decode attention over the bf16 pool or its f32 widening, planned at `max_tokens`.
  cudaError_t RunDecode(bool bf16, int64_t max_tokens, int sm_count) {
    const int64_t bytes = cuda::DecodeAttentionScratchBytes(max_tokens, shape_.heads, shape_.head_dim);
    DeviceArray<float> scratch(std::vector<float>(static_cast<size_t>(bytes / 4), 0.0f));
    const cudaError_t e = cuda::LaunchDecodeAttention(
        q_device_.get(), positions_device_.get(), sequences_device_.get(), tokens_, max_tokens, shape_.heads, shape_.kv_heads,
        shape_.head_dim, shape_.window, scale(), bf16 ? static_cast<const void*>(k_.get()) : k_reference_.get(),
        bf16 ? static_cast<const void*>(v_.get()) : v_reference_.get(), bf16 ? cuda::WeightType::kBF16 : cuda::WeightType::kF32,
        Pages(), scratch.get(), out_.get(), sm_count, nullptr);
    if (e != cudaSuccess) return e;
    return cudaDeviceSynchronize();
  }
  std::vector<float> Output() { return out_.ToHost(); }

 private:
  static int64_t TotalTokens(const std::vector<Span>& spans) {
    int64_t total = 0;
    for (const Span& span : spans) total += span.tokens;
    return total;
  }
  // A ring holds exactly the window plus one chunk less one, the least the contract allows; a
  // linear cache has spare slots past the last position, which stay unwritten (NaN).
  static int64_t Capacity(const Shape& s, const std::vector<Span>& spans) {
    int64_t chunk = 0, end = 0;
    for (const Span& span : spans) {
      chunk = std::max(chunk, span.tokens);
      end = std::max(end, span.first_position + span.tokens);
    }
    return s.ring ? s.window + chunk - 1 : end + 70;
  }
  static std::vector<float> RandomQueries(const Shape& s, int64_t tokens, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> q(tokens * s.heads * s.head_dim);
    for (float& x : q) x = uniform(rng);
    return q;
  }
  static std::vector<int32_t> Positions(const std::vector<Span>& spans) {
    std::vector<int32_t> positions;
    for (const Span& span : spans) {
      for (int64_t t = 0; t < span.tokens; ++t) positions.push_back(static_cast<int32_t>(span.first_position + t));
    }
    return positions;
  }
  static std::vector<int32_t> Sequences(const std::vector<Span>& spans) {
    std::vector<int32_t> sequences;
    for (size_t s = 0; s < spans.size(); ++s) sequences.insert(sequences.end(), static_cast<size_t>(spans[s].tokens), static_cast<int32_t>(s));
    return sequences;
  }
  static std::vector<int32_t> Runs(const std::vector<Span>& spans) {
    std::vector<int32_t> runs = {0};
    for (const Span& span : spans) runs.push_back(runs.back() + static_cast<int32_t>(span.tokens));
    return runs;
  }
  // Every sequence's blocks, drawn from a shuffled pool with three spare blocks.
  static std::vector<int32_t> Tables(size_t sequences, int64_t blocks_per_sequence, uint32_t seed) {
    std::vector<int32_t> blocks(sequences * static_cast<size_t>(blocks_per_sequence) + 3);
    std::iota(blocks.begin(), blocks.end(), 0);
    std::shuffle(blocks.begin(), blocks.end(), std::mt19937(seed));
    blocks.resize(sequences * static_cast<size_t>(blocks_per_sequence));
    return blocks;
  }
  int64_t PoolRows() const { return (static_cast<int64_t>(tables_.size()) + 3) * shape_.block_size; }
  // Slot i of a sequence has been written iff some position <= its last one maps to it, i.e. i <=
  // last (linear or ring alike). Unwritten slots and unowned blocks are NaN, so a kernel that
  // reads one fails the comparison.
  std::vector<uint16_t> RandomPool(uint32_t seed) const {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    const int64_t width = shape_.kv_heads * shape_.head_dim;
    std::vector<uint16_t> pool(static_cast<size_t>(PoolRows() * width), ToBf16(std::numeric_limits<float>::quiet_NaN()));
    for (size_t s = 0; s < spans_.size(); ++s) {
      const int64_t last = spans_[s].first_position + spans_[s].tokens - 1;
      for (int64_t slot = 0; slot < capacity_ && slot <= last; ++slot) {
        const int64_t block = tables_[s * static_cast<size_t>(blocks_per_sequence_) + static_cast<size_t>(slot / shape_.block_size)];
        const int64_t row = block * shape_.block_size + slot % shape_.block_size;
        for (int64_t j = 0; j < width; ++j) pool[static_cast<size_t>(row * width + j)] = ToBf16(uniform(rng));
      }
    }
    return pool;
  }
  static std::vector<float> Widen(const std::vector<uint16_t>& values) {
    std::vector<float> wide(values.size());
    for (size_t i = 0; i < values.size(); ++i) wide[i] = FromBf16(values[i]);
    return wide;
  }

  Shape shape_;
  std::vector<Span> spans_;
  int64_t tokens_, capacity_, blocks_per_sequence_;
  std::vector<float> q_;
  std::vector<int32_t> positions_, sequences_, runs_, tables_;
  std::vector<uint16_t> k_bf16_, v_bf16_;
  std::vector<float> k_f32_, v_f32_;
  DeviceArray<uint16_t> k_, v_;
  DeviceArray<float> k_reference_, v_reference_, q_device_;
  DeviceArray<int32_t> positions_device_, sequences_device_, runs_device_, tables_device_;
  DeviceArray<float> out_;
};

// Largest |a - b|; a NaN anywhere counts as infinitely wrong.
float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    const float diff = std::abs(a[i] - b[i]);
    if (!(diff <= worst)) worst = std::isnan(diff) ? std::numeric_limits<float>::infinity() : diff;
  }
  return worst;
}

// Max |prefill - reference| on one problem; the reference may run with another window.
float PrefillError(const Shape& shape, uint32_t seed, int64_t reference_window) {
  Problem problem(shape, seed);
  EXPECT_EQ(problem.RunReference(reference_window), cudaSuccess);
  const std::vector<float> reference = problem.Output();
  EXPECT_EQ(problem.RunPrefill(), cudaSuccess);
  const std::vector<float> prefill = problem.Output();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return MaxAbsDiff(prefill, reference);
}

class PrefillAttentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto device = cuda::ProbeCudaDevice(0);
    if (!device) GTEST_SKIP() << device.error().message();
  }
};

struct HeadLayout {
  int64_t head_dim, heads, kv_heads;
};

class PrefillAttentionShapes : public PrefillAttentionTest, public ::testing::WithParamInterface<HeadLayout> {};

TEST_P(PrefillAttentionShapes, MatchesTheReferenceKernel) {
  const HeadLayout layout = GetParam();
  struct Mask {
    int64_t window;
    bool ring;
  };
  // Full causal; a window smaller than one key tile (most tiles skipped, the rest masked at both
  // ends); the same on a ring that wraps; a window wider than a tile on a ring.
  const Mask masks[] = {{/*window=*/0, /*ring=*/false}, {/*window=*/13, /*ring=*/false},
                        {/*window=*/13, /*ring=*/true}, {/*window=*/100, /*ring=*/true}};
  float worst = 0.0f;
  uint32_t seed = 1;
  for (int64_t tokens : {1, 7, 64, 300}) {
    for (const Mask& mask : masks) {
      // 0: the first chunk; 173: a later chunk, past both windows, so the ring has wrapped.
      for (int64_t first_position : {0, 173}) {
        const Shape shape{tokens, layout.heads, layout.kv_heads, layout.head_dim, mask.window, first_position,
                          mask.ring};
        const float error = PrefillError(shape, seed++, shape.window);
        EXPECT_LE(error, kTolerance) << shape.ToString();
        worst = std::max(worst, error);
      }
    }
  }
  std::printf("head_dim %ld, heads %ld/%ld: max |prefill - reference| %.3g over %u cases\n",
              static_cast<long>(layout.head_dim), static_cast<long>(layout.heads), static_cast<long>(layout.kv_heads),
              worst, seed - 1);
}

std::vector<HeadLayout> Layouts() {
  std::vector<HeadLayout> layouts;
  const std::pair<int64_t, int64_t> ratios[] = {{1, 1}, {8, 1}, {16, 8}, {16, 1}};  // heads / kv_heads
  for (int64_t head_dim : {16, 64, 256, 512}) {
    for (auto [heads, kv_heads] : ratios) layouts.push_back({head_dim, heads, kv_heads});
  }
  // Widths that are multiples of 16 but not of 64 take padded rather than swizzled tiles, and
  // 272 splits its output into a full and a partial slice.
  layouts.push_back({/*head_dim=*/48, /*heads=*/6, /*kv_heads=*/2});
  layouts.push_back({/*head_dim=*/272, /*heads=*/4, /*kv_heads=*/1});
  return layouts;
}

INSTANTIATE_TEST_SUITE_P(HeadLayouts, PrefillAttentionShapes, ::testing::ValuesIn(Layouts()),
                         [](const ::testing::TestParamInfo<HeadLayout>& info) {
                           char name[64];
                           std::snprintf(name, sizeof(name), "d%ld_h%ld_kv%ld", static_cast<long>(info.param.head_dim),
                                         static_cast<long>(info.param.heads), static_cast<long>(info.param.kv_heads));
                           return std::string(name);
                         });

// The bound must catch a kernel that sees one key too many: a window of 13 against the
// reference's 14 has to fail it.
TEST_F(PrefillAttentionTest, ToleranceSeesAOneKeyShiftOfTheWindow) {
  const Shape shape{/*tokens=*/64, /*heads=*/8, /*kv_heads=*/1, /*head_dim=*/64, /*window=*/13,
                    /*first_position=*/0, /*ring=*/false};
  EXPECT_GT(PrefillError(shape, /*seed=*/99, /*reference_window=*/14), kTolerance);
}

// A mixed step: prefill chunks and single decode tokens of several sequences at different
// lengths, each over its own blocks. Row tiles must not straddle sequences, and every token must
// read only its own sequence's pool rows (the others' and the spare blocks are NaN where unwritten).
TEST_F(PrefillAttentionTest, MixedRunsOfSeveralSequencesMatchTheReference) {
  const std::vector<Span> spans = {{0, 37}, {173, 1}, {50, 64}, {5, 3}, {300, 1}, {0, 1}};
  const HeadLayout layouts[] = {{64, 8, 1}, {256, 16, 8}, {512, 16, 1}, {48, 6, 2}};
  uint32_t seed = 500;
  for (const HeadLayout& layout : layouts) {
    for (auto [window, ring] : {std::pair<int64_t, bool>{0, false}, {13, true}, {100, true}}) {
      for (int64_t block_size : {16, 5}) {
        Shape shape{0, layout.heads, layout.kv_heads, layout.head_dim, window, 0, ring, block_size};
        Problem problem(shape, spans, seed++);
        shape.tokens = problem.tokens();
        ASSERT_EQ(problem.RunReference(window), cudaSuccess);
        const std::vector<float> reference = problem.Output();
        ASSERT_EQ(problem.RunPrefill(), cudaSuccess);
        const float error = MaxAbsDiff(problem.Output(), reference);
        EXPECT_LE(error, kTolerance) << shape.ToString();
      }
    }
  }
}

class DecodeAttentionTest : public PrefillAttentionTest {
 protected:
  int SmCount() { return cuda::ProbeCudaDevice(0)->multiprocessors; }
};

// Split-K decode attention over a batch of sequences at different lengths in one launch, each
// token its own length and its own blocks, against the reference kernel: same cache values, f32
// math on both sides, so the bound is tight. Both cache types; block sizes a power of two or not;
// the batch planned at its own size and at a larger bound (fewer splits each).
TEST_F(DecodeAttentionTest, BatchOfSequencesMatchesTheReference) {
  const std::vector<Span> spans = {{0, 1}, {17, 1}, {300, 1}, {1000, 1}, {63, 1}, {64, 1}, {2, 1}, {777, 1}, {31, 1}};
  const HeadLayout layouts[] = {{64, 8, 1}, {256, 16, 8}, {512, 16, 1}, {128, 4, 4}};
  uint32_t seed = 900;
  for (const HeadLayout& layout : layouts) {
    for (auto [window, ring] : {std::pair<int64_t, bool>{0, false}, {100, true}}) {
      for (int64_t block_size : {16, 7}) {
        Shape shape{static_cast<int64_t>(spans.size()), layout.heads, layout.kv_heads, layout.head_dim, window, 0, ring, block_size};
        Problem problem(shape, spans, seed++);
        ASSERT_EQ(problem.RunReference(window), cudaSuccess);
        const std::vector<float> reference = problem.Output();
        for (bool bf16 : {true, false}) {
          for (int64_t max_tokens : {static_cast<int64_t>(spans.size()), int64_t{512}}) {
            ASSERT_EQ(problem.RunDecode(bf16, max_tokens, SmCount()), cudaSuccess);
            EXPECT_LE(MaxAbsDiff(problem.Output(), reference), 1e-4f)
                << shape.ToString() << (bf16 ? " bf16" : " f32") << " max_tokens " << max_tokens;
          }
        }
      }
    }
  }
  // Up to kDecodeAttentionMaxRunTokens tokens of one sequence (a speculative verify, a short
  // chunk) take the same kernel: 12B's full layers (16 heads over one 512-wide KV head) and its
  // sliding ones (a ring), planned at the step's bound and at a larger one.
  for (int64_t tokens : {int64_t{4}, int64_t{9}, cuda::kDecodeAttentionMaxRunTokens}) {
    for (auto [layout, window] : {std::pair<HeadLayout, int64_t>{{512, 16, 1}, 0}, {{256, 16, 8}, 100}}) {
      const Shape chunk{tokens, layout.heads, layout.kv_heads, layout.head_dim, window, 0, window > 0, 16};
      Problem problem(chunk, {{3000, tokens}}, seed++);
      ASSERT_EQ(problem.RunReference(window), cudaSuccess);
      const std::vector<float> reference = problem.Output();
      for (int64_t max_tokens : {tokens, int64_t{64}}) {
        ASSERT_EQ(problem.RunDecode(true, max_tokens, SmCount()), cudaSuccess);
        EXPECT_LE(MaxAbsDiff(problem.Output(), reference), 1e-4f) << chunk.ToString() << " max_tokens " << max_tokens;
      }
    }
  }
}

// Gemma 4 12B at a 2048-token prefill: sliding layers (16 query heads over 8 kv heads of 256,
// window 1024, ring cache) and full layers (16 query heads over one kv head of 512). Prints times;
// asserts only correctness.
TEST_F(PrefillAttentionTest, TimesGemma12bShapes) {
  const Shape shapes[] = {
      {/*tokens=*/2048, /*heads=*/16, /*kv_heads=*/8, /*head_dim=*/256, /*window=*/1024, /*first_position=*/0,
       /*ring=*/true},
      {/*tokens=*/2048, /*heads=*/16, /*kv_heads=*/1, /*head_dim=*/512, /*window=*/0, /*first_position=*/0,
       /*ring=*/false},
  };
  for (const Shape& shape : shapes) {
    Problem problem(shape, /*seed=*/7);
    cudaEvent_t start, stop;
    ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
    ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
    auto time_ms = [&](auto run, int repeats) {
      EXPECT_EQ(run(), cudaSuccess);  // warm-up
      cudaEventRecord(start);
      for (int i = 0; i < repeats; ++i) run();
      cudaEventRecord(stop);
      cudaEventSynchronize(stop);
      float ms = 0.0f;
      cudaEventElapsedTime(&ms, start, stop);
      return ms / repeats;
    };
    const float reference_ms = time_ms([&] { return problem.RunReference(shape.window); }, 3);
    const std::vector<float> reference = problem.Output();
    const float prefill_ms = time_ms([&] { return problem.RunPrefill(); }, 20);
    const float error = MaxAbsDiff(problem.Output(), reference);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    // Visible (query, key) pairs times 4 * head_dim flops (Q.K^T and P.V, multiply-add as two).
    double pairs = 0.0;
    for (int64_t t = 0; t < shape.tokens; ++t) {
      const int64_t p = shape.first_position + t;
      pairs += static_cast<double>(shape.window > 0 ? std::min(p + 1, shape.window) : p + 1);
    }
    const double flops = pairs * static_cast<double>(shape.heads) * 4.0 * static_cast<double>(shape.head_dim);
    std::printf("%s: reference %.3f ms, prefill %.3f ms (%.1fx, %.0f TFLOP/s), max |diff| %.3g\n",
                shape.ToString().c_str(), reference_ms, prefill_ms, reference_ms / prefill_ms,
                flops / (prefill_ms * 1e-3) / 1e12, error);
    EXPECT_LE(error, kTolerance) << shape.ToString();
  }
}

// Shapes outside the contract come back as cudaErrorInvalidValue before anything touches the
// device, so the caller can fall back to the reference kernel.
TEST(PrefillAttentionContract, RejectsWhatItCannotDo) {
  auto launch = [](int64_t heads, int64_t kv_heads, int64_t head_dim) {
    cuda::KvPages pages;
    pages.block_size = 16;
    pages.capacity = 16;
    return cuda::LaunchPrefillAttention(nullptr, nullptr, nullptr, nullptr, /*num_runs=*/1, /*tokens=*/4, heads, kv_heads,
                                        head_dim, /*window=*/0, /*scale=*/1.0f, nullptr, nullptr, pages, nullptr, nullptr);
  };
  EXPECT_EQ(launch(/*heads=*/8, /*kv_heads=*/1, /*head_dim=*/8), cudaErrorInvalidValue);    // below 16
  EXPECT_EQ(launch(/*heads=*/8, /*kv_heads=*/1, /*head_dim=*/528), cudaErrorInvalidValue);  // above 512
  EXPECT_EQ(launch(/*heads=*/8, /*kv_heads=*/1, /*head_dim=*/40), cudaErrorInvalidValue);   // not a multiple of 16
  EXPECT_EQ(launch(/*heads=*/6, /*kv_heads=*/4, /*head_dim=*/64), cudaErrorInvalidValue);   // 6 % 4 != 0
}

}  // namespace
}  // namespace kiln
