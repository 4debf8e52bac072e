// The block-format kernels (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, F8_E4M3) against
// core/quant's scalar DequantizeRow: each weight is quantized on the host (QuantizeRow), placed on the device as the
// placed model places it (LaunchRepackBlocks, in two slices of rows), and run through
//   - the linear (RunBlockLinear): the block GEMV for 1-8 rows, the int8 tensor-core kernel (Q4_0,
//     Q8_0, Q4_K, Q6_K) and bf16 slabs through cuBLASLt for 9-64 rows, against sum_j DequantizeRow(w)_j
//     * x_j in double; the tensor-core kernel alone over several token groups and row tails;
//   - the fused gate/up GELU GEMV and the three-target projections GEMV;
//   - the embedding gather, bit for bit;
//   - the routed MoE experts (f32 router, block experts), 1 to 7 tokens;
//   - the random fill of benchmarks (finite, bounded, not zero).
// Tolerances are relative to m = sum_j |w_j x_j|, the size a rounding error scales with:
//   GEMV (f32 products, f32 sums of at most ~40 terms deep):  1e-5 m + 1e-6
//   bf16 slabs (x and w each rounded to bf16, 2^-9 relative):  5e-3 m + 1e-5
// Skipped, with the reason, without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backends/cuda/block_linear.h"
#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/cuda_device.h"
#include "backends/cuda/cuda_placed_model.h"
#include "backends/cuda/kernels/block_gemv.cuh"
#include "backends/cuda/kernels/block_layout.h"
#include "backends/cuda/kernels/block_mma.cuh"
#include "backends/cuda/kernels/block_weights.cuh"
#include "backends/cuda/kernels/gemv.cuh"
#include "backends/cuda/kernels/kernels.cuh"
#include "core/quant.h"

namespace kiln {
namespace {

using cuda::WeightType;

constexpr DType kFormats[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kF8_E4M3,
                              DType::kQ5_0, DType::kQ5_1, DType::kQ4_1, DType::kQ5_K};
constexpr double kGemvTolerance = 1e-5, kSlabTolerance = 5e-3;

class DeviceMemory {
 public:
  explicit DeviceMemory(size_t bytes) { EXPECT_EQ(cudaMalloc(&data_, std::max<size_t>(bytes, 256)), cudaSuccess); }
  template <typename T>
  DeviceMemory(const std::vector<T>& host) : DeviceMemory(host.size() * sizeof(T)) {
    EXPECT_EQ(cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceMemory() { cudaFree(data_); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  template <typename T = void>
  T* as() const {
    return static_cast<T*>(data_);
  }
  template <typename T>
  std::vector<T> Download(size_t count) const {
    std::vector<T> host(count);
    EXPECT_EQ(cudaMemcpy(host.data(), data_, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }

 private:
  void* data_ = nullptr;
};

std::vector<float> Normal(size_t count, float stddev, uint32_t seed) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> values(count);
  for (float& v : values) v = normal(engine);
  return values;
}

// A weight of n rows of k elements: its GGUF blocks, their reference dequantization, and the
// device copy in the placed layout.
struct Weight {
  DType dtype;
  int64_t n, k;
  std::vector<uint8_t> blocks;
  std::vector<float> values;  // DequantizeRow of every row
  std::unique_ptr<DeviceMemory> placed;
  WeightType type() const { return cuda::TypeOf(dtype); }
};

Weight MakeWeight(DType dtype, int64_t n, int64_t k, uint32_t seed) {
  Weight w{dtype, n, k, {}, {}, nullptr};
  const int64_t row_bytes = DTypeBytes(dtype, k);
  const std::vector<float> source = Normal(static_cast<size_t>(n * k), 0.05f, seed);
  w.blocks.resize(static_cast<size_t>(n * row_bytes));
  w.values.resize(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r) {
    QuantizeRow(dtype, source.data() + r * k, k, w.blocks.data() + r * row_bytes);
    DequantizeRow(dtype, w.blocks.data() + r * row_bytes, k, w.values.data() + r * k);
  }
  // Placed as the placed model does it, in two slices of rows through LaunchRepackBlocks.
  DeviceMemory raw(w.blocks);
  w.placed = std::make_unique<DeviceMemory>(static_cast<size_t>(cuda::PlacedBlockBytes(w.type(), n, k)));
  const int64_t half = n / 2;
  EXPECT_EQ(cuda::LaunchRepackBlocks(raw.as(), w.type(), 0, half, n, k, w.placed->as(), nullptr), cudaSuccess);
  EXPECT_EQ(cuda::LaunchRepackBlocks(raw.as<uint8_t>() + half * row_bytes, w.type(), half, n - half, n, k, w.placed->as(), nullptr),
            cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return w;
}

// What the int8-activation kernels (BlockGemvMath::kInt8) may add to the error of y[r, i]: x
// rounded to int8 per 32-element block b moves each x_j by at most amax_b / 254, so the product by
// at most sum_b (amax_b / 254) sum_{j in b} |w_ij|; plus the f32 rounding of the per-block scale
// products, below 1e-5 max_{j in b} |w_ij| sum_{j in b} |x_rj|.
std::vector<double> Int8Slack(const Weight& w, const std::vector<float>& x, int64_t rows) {
  std::vector<double> slack(static_cast<size_t>(rows * w.n), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < w.n; ++i) {
      double total = 0.0;
      for (int64_t b = 0; b < w.k; b += 32) {
        double amax = 0.0, x_sum = 0.0, w_sum = 0.0, w_max = 0.0;
        for (int64_t j = b; j < b + 32; ++j) {
          amax = std::max(amax, static_cast<double>(std::fabs(x[r * w.k + j])));
          x_sum += std::fabs(x[r * w.k + j]);
          w_sum += std::fabs(w.values[i * w.k + j]);
          w_max = std::max(w_max, static_cast<double>(std::fabs(w.values[i * w.k + j])));
        }
        total += amax / 254.0 * w_sum + 1e-5 * w_max * x_sum;
      }
      slack[r * w.n + i] = total;
    }
  }
  return slack;
}

// Whether a GEMV of `rows` x rows takes the int8-activation kernels by default.
bool TakesInt8(const Weight& w, int64_t rows) { return cuda::BlockGemvInt8Supports(w.type(), rows, w.k); }
// Whether the linear of `rows` x rows past the GEMV takes the int8 tensor-core kernel by default.
bool TakesMma(const Weight& w, int64_t rows) {
  return rows > cuda::kBlockGemvMaxRows && rows <= cuda::kBlockMmaMaxRows && cuda::BlockMmaSupports(w.type(), w.k);
}

// y[r, i] = sum_j w[i, j] x[r, j] in double, and the matching m = sum_j |w x|.
void Reference(const Weight& w, const std::vector<float>& x, int64_t rows, std::vector<double>* y, std::vector<double>* m) {
  y->assign(static_cast<size_t>(rows * w.n), 0.0);
  m->assign(static_cast<size_t>(rows * w.n), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < w.n; ++i) {
      double sum = 0.0, size = 0.0;
      for (int64_t j = 0; j < w.k; ++j) {
        const double product = static_cast<double>(w.values[i * w.k + j]) * x[r * w.k + j];
        sum += product;
        size += std::fabs(product);
      }
      (*y)[r * w.n + i] = sum;
      (*m)[r * w.n + i] = size;
    }
  }
}

double GeluTanh(double g) { return 0.5 * g * (1.0 + std::tanh(0.7978845608028654 * (g + 0.044715 * g * g * g))); }

// The plan sizes a linear's scratch once, at the step's most rows (CudaBackend::ScratchBytes); a
// step may run fewer rows, down another path. Host arithmetic only, so it runs without a GPU.
TEST(BlockLinearScratchTest, PlannedScratchCoversEveryFewerRowCountAndItsPath) {
  const std::pair<int64_t, int64_t> shapes[] = {{3840, 15360}, {262144, 3840}, {129, 3840}};
  for (DType dtype : kFormats) {
    const WeightType type = cuda::TypeOf(dtype);
    for (const auto& [n, k] : shapes) {
      for (const int64_t planned_rows : {1, 8, 9, 16, 33, 64, 65, 96, 512}) {
        SCOPED_TRACE(std::string(DTypeName(dtype)) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " planned " +
                     std::to_string(planned_rows));
        const int64_t planned = cuda::BlockLinearScratchBytes(type, planned_rows, n, k);
        for (int64_t rows = 1; rows <= planned_rows; ++rows) {
          int64_t needed = 0;
          if (cuda::BlockGemvSupports(type, rows, k)) {
            needed = 0;
          } else if (rows <= cuda::kBlockMmaMaxRows && cuda::BlockMmaSupports(type, k)) {
            needed = cuda::BlockMmaScratchBytes(rows, k);
            EXPECT_EQ(cuda::BlockLinearScratchBytes(type, rows, n, k), needed);
          } else {
            needed = cuda::BlockLinearScratchBytes(type, rows, n, k, cuda::kDequantSlabBytes, cuda::BlockLinearPath::kSlabs);
            ASSERT_GE(needed, rows * k * 2) << "rows " << rows;  // x in bf16 at least
          }
          ASSERT_GE(planned, needed) << "rows " << rows;
        }
        if (planned_rows > cuda::kBlockGemvMaxRows && cuda::BlockMmaSupports(type, k)) {
          EXPECT_EQ(cuda::BlockLinearScratchBytes(type, planned_rows, n, k, cuda::kDequantSlabBytes, cuda::BlockLinearPath::kMma),
                    cuda::BlockMmaScratchBytes(planned_rows, k));
        }
      }
    }
  }
}

class QuantKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto device = cuda::ProbeCudaDevice(0);
    if (!device) GTEST_SKIP() << device.error().message();
  }
};

TEST_F(QuantKernelTest, LinearMatchesTheScalarReferenceForEveryFormatRowCountAndShape) {
  auto gemm = cuda::CublasLtGemm::Create();
  ASSERT_TRUE(gemm.has_value()) << gemm.error().ToString();
  // Odd row counts (a warp's second row missing), one row, and a 12B width; k a multiple of every
  // block size (256).
  const std::pair<int64_t, int64_t> shapes[] = {{1, 256}, {37, 768}, {129, 3840}};
  const int64_t row_counts[] = {1, 2, 3, 4, 8, 9, 16, 33, 64};
  uint32_t seed = 1;
  for (DType dtype : kFormats) {
    for (const auto& [n, k] : shapes) {
      const Weight w = MakeWeight(dtype, n, k, seed++);
      for (int64_t rows : row_counts) {
        const std::vector<float> x = Normal(static_cast<size_t>(rows * k), 1.0f, seed++);
        std::vector<double> expected, size;
        Reference(w, x, rows, &expected, &size);
        // Past the GEMV the default path (the int8 kernel where it takes the format), then bf16
        // slabs forced.
        for (const cuda::BlockLinearPath path : {cuda::BlockLinearPath::kAuto, cuda::BlockLinearPath::kSlabs}) {
          if (path == cuda::BlockLinearPath::kSlabs && (rows <= cuda::kBlockGemvMaxRows || !TakesMma(w, rows))) continue;
          const bool gemv = rows <= cuda::kBlockGemvMaxRows, mma = path == cuda::BlockLinearPath::kAuto && TakesMma(w, rows);
          SCOPED_TRACE(std::string(DTypeName(dtype)) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " rows=" +
                       std::to_string(rows) + (gemv ? " gemv" : mma ? " int8 mma" : " slabs"));
          // Slabs of 64 weight rows: n = 129 takes three (64, 64, 1), the last one narrower.
          const int64_t slab_bytes = 64 * 2 * k;
          DeviceMemory x_device(x), y_device(static_cast<size_t>(rows * n) * 4);
          DeviceMemory scratch(static_cast<size_t>(cuda::BlockLinearScratchBytes(w.type(), rows, n, k, slab_bytes, path)));
          Status ran = cuda::RunBlockLinear(**gemm, x_device.as<float>(), w.placed->as(), w.type(), rows, n, k, y_device.as<float>(),
                                            scratch.as(), nullptr, slab_bytes, path);
          ASSERT_TRUE(ran.ok()) << ran.ToString();
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const std::vector<float> y = y_device.Download<float>(static_cast<size_t>(rows * n));
          const double tolerance = gemv || mma ? kGemvTolerance : kSlabTolerance;
          const bool int8 = gemv ? TakesInt8(w, rows) : mma;
          const std::vector<double> slack = int8 ? Int8Slack(w, x, rows) : std::vector<double>(y.size(), 0.0);
          int failures = 0;
          for (size_t i = 0; i < y.size() && failures < 5; ++i) {
            const double bound = tolerance * size[i] + slack[i] + (gemv || mma ? 1e-6 : 1e-5);
            if (!(std::fabs(y[i] - expected[i]) <= bound)) {
              ADD_FAILURE() << "output " << i << ": " << y[i] << " vs " << expected[i] << " (bound " << bound << ")";
              ++failures;
            }
          }
        }
      }
    }
  }
}

// The int8 tensor-core kernel alone (LaunchBlockMma), past the rows the linear sends it: 130 rows
// are three token groups of 64 (the last two rows alone in theirs), n = 45 a whole 32-row tile
// and 13 rows of the next, k = 768 three Q4_K blocks (12 steps over 8 warps, some warps taking
// one, some two; Q6_K's 24 steps three each) and k = 8448; the output after rows x n keeps its
// sentinel.
TEST_F(QuantKernelTest, Int8TensorCoreLinearCoversTokenGroupsAndRowTails) {
  uint32_t seed = 500;
  for (DType dtype : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K}) {
    for (const auto& [rows, n, k] : {std::tuple<int64_t, int64_t, int64_t>{130, 45, 768}, {23, 45, 8448}, {64, 33, 256}}) {
      SCOPED_TRACE(std::string(DTypeName(dtype)) + " rows=" + std::to_string(rows) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
      const Weight w = MakeWeight(dtype, n, k, seed++);
      ASSERT_TRUE(cuda::BlockMmaSupports(w.type(), k));
      const std::vector<float> x = Normal(static_cast<size_t>(rows * k), 1.0f, seed++);
      std::vector<double> expected, size;
      Reference(w, x, rows, &expected, &size);
      const std::vector<double> slack = Int8Slack(w, x, rows);
      const size_t outputs = static_cast<size_t>(rows * n);
      DeviceMemory x_device(x), y_device((outputs + 64) * 4), scratch(static_cast<size_t>(cuda::BlockMmaScratchBytes(rows, k)));
      ASSERT_EQ(cudaMemset(y_device.as(), 0xFF, (outputs + 64) * 4), cudaSuccess);  // NaN until written
      ASSERT_EQ(cuda::LaunchBlockMma(x_device.as<float>(), w.placed->as(), w.type(), rows, n, k, y_device.as<float>(), scratch.as(), nullptr),
                cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<float> y = y_device.Download<float>(outputs + 64);
      int failures = 0;
      for (size_t i = 0; i < outputs && failures < 5; ++i) {
        if (!(std::fabs(y[i] - expected[i]) <= kGemvTolerance * size[i] + slack[i] + 1e-6)) {
          ADD_FAILURE() << "output " << i << " (row " << i / n << ", column " << i % n << "): " << y[i] << " vs " << expected[i];
          ++failures;
        }
      }
      for (size_t i = outputs; i < outputs + 64; ++i) EXPECT_TRUE(std::isnan(y[i])) << "written past the output at " << i;
    }
  }
  // Formats it does not take, and rows not of whole blocks, are refused.
  EXPECT_FALSE(cuda::BlockMmaSupports(WeightType::kQ5_K, 256));
  EXPECT_FALSE(cuda::BlockMmaSupports(WeightType::kF8E4M3, 256));
  EXPECT_FALSE(cuda::BlockMmaSupports(WeightType::kQ4_K, 288));
  float* nothing = nullptr;
  EXPECT_EQ(cuda::LaunchBlockMma(nothing, nothing, WeightType::kQ5_K, 16, 8, 256, nothing, nothing, nullptr), cudaErrorInvalidValue);
}

// One x row of Q4_0, Q8_0 and Q4_K: the int8-activation kernels within their bound, the f32 kernels
// (BlockGemvMath::kF32) still within the exact GEMV tolerance, and the two different (so the
// default really takes the int8 path). Shapes with a long row (k = 8448) and
// x of very different magnitudes across blocks.
TEST_F(QuantKernelTest, Int8ActivationsStayWithinTheirBound) {
  uint32_t seed = 300;
  for (DType dtype : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K}) {
    for (const auto& [n, k] : {std::pair<int64_t, int64_t>{1, 256}, {45, 768}, {33, 8448}}) {
      SCOPED_TRACE(std::string(DTypeName(dtype)) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
      const Weight w = MakeWeight(dtype, n, k, seed++);
      std::vector<float> x = Normal(static_cast<size_t>(k), 1.0f, seed++);
      for (int64_t j = 0; j < k; ++j) x[j] *= (j / 32) % 3 == 0 ? 100.0f : (j / 32) % 3 == 1 ? 0.01f : 1.0f;
      for (int64_t j = 64; j < std::min<int64_t>(k, 96); ++j) x[j] = 0.0f;  // an all-zero block
      ASSERT_TRUE(TakesInt8(w, 1));
      std::vector<double> expected, size;
      Reference(w, x, 1, &expected, &size);
      const std::vector<double> slack = Int8Slack(w, x, 1);
      DeviceMemory x_device(x), y_int8(static_cast<size_t>(n) * 4), y_f32(static_cast<size_t>(n) * 4);
      const void* weights[1] = {w.placed->as()};
      float* int8_out[1] = {y_int8.as<float>()};
      float* f32_out[1] = {y_f32.as<float>()};
      ASSERT_EQ(cuda::LaunchBlockGemv(x_device.as<float>(), weights, int8_out, &n, 1, nullptr, w.type(), 1, k, nullptr), cudaSuccess);
      ASSERT_EQ(cuda::LaunchBlockGemv(x_device.as<float>(), weights, f32_out, &n, 1, nullptr, w.type(), 1, k, nullptr, cuda::BlockGemvMath::kF32),
                cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<float> a = y_int8.Download<float>(static_cast<size_t>(n)), b = y_f32.Download<float>(static_cast<size_t>(n));
      bool differ = false;
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_LE(std::fabs(a[i] - expected[i]), kGemvTolerance * size[i] + slack[i] + 1e-6) << "int8, output " << i;
        EXPECT_LE(std::fabs(b[i] - expected[i]), kGemvTolerance * size[i] + 1e-6) << "f32, output " << i;
        differ |= a[i] != b[i];
      }
      EXPECT_TRUE(differ) << "the int8 and f32 kernels gave the same outputs";
    }
  }
}

// The int8 kernels run a persistent grid: every warp takes several row sets when there are more
// than fit on the device at once. 20,001 rows (plain), twice 20,001 (gate and up) and three targets
// take more than one round on any current card, for one x row and for five; every output starts
// as NaN, so a row set that no warp took fails. Several x rows are staged whole in shared memory,
// so the widest x they take shrinks with the rows: 32,768 elements at two, 8,192 at eight (one
// block wider runs the f32 kernel); one row is staged a tile at a time and takes any width.
TEST_F(QuantKernelTest, Int8PersistentGridCoversEveryRowSet) {
  uint32_t seed = 400;
  const int64_t k = 256, n = 20001, third = 9001;
  auto expect_near = [](const std::vector<float>& got, const std::vector<double>& expected, const std::vector<double>& size,
                        const std::vector<double>& slack, const std::string& what) {
    int failures = 0;
    for (size_t i = 0; i < got.size() && failures < 5; ++i) {
      if (!(std::fabs(got[i] - expected[i]) <= kGemvTolerance * size[i] + slack[i] + 1e-6)) {
        ADD_FAILURE() << what << " output " << i << ": " << got[i] << " vs " << expected[i];
        ++failures;
      }
    }
  };
  for (DType dtype : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K}) {
    const Weight gate = MakeWeight(dtype, n, k, seed++), up = MakeWeight(dtype, n, k, seed++), v = MakeWeight(dtype, third, k, seed++);
    for (const int64_t rows : {int64_t{1}, int64_t{5}}) {
      SCOPED_TRACE(std::string(DTypeName(dtype)) + " rows=" + std::to_string(rows));
      ASSERT_TRUE(TakesInt8(gate, rows));
      const std::vector<float> x = Normal(static_cast<size_t>(rows * k), 1.0f, seed++);
      std::vector<double> g, g_size, u, u_size, vy, v_size;
      Reference(gate, x, rows, &g, &g_size);
      Reference(up, x, rows, &u, &u_size);
      Reference(v, x, rows, &vy, &v_size);
      const std::vector<double> g_slack = Int8Slack(gate, x, rows), u_slack = Int8Slack(up, x, rows), v_slack = Int8Slack(v, x, rows);
      const size_t outputs_n = static_cast<size_t>(rows * n), outputs_third = static_cast<size_t>(rows * third);
      DeviceMemory x_device(x), y_gate(outputs_n * 4), y_fused(outputs_n * 4), y_up(outputs_n * 4), y_v(outputs_third * 4);
      for (const DeviceMemory* y : {&y_gate, &y_fused, &y_up}) ASSERT_EQ(cudaMemset(y->as(), 0xFF, outputs_n * 4), cudaSuccess);
      ASSERT_EQ(cudaMemset(y_v.as(), 0xFF, outputs_third * 4), cudaSuccess);  // NaN until written
      ASSERT_EQ(cuda::LaunchGemvGeluMul(x_device.as<float>(), gate.placed->as(), up.placed->as(), gate.type(), rows, n, k,
                                        y_fused.as<float>(), nullptr),
                cudaSuccess);
      const void* weights[3] = {gate.placed->as(), v.placed->as(), up.placed->as()};
      float* outputs[3] = {y_gate.as<float>(), y_v.as<float>(), y_up.as<float>()};
      const int64_t ns[3] = {n, third, n};
      ASSERT_EQ(cuda::LaunchGemvMulti(x_device.as<float>(), weights, outputs, ns, 3, gate.type(), rows, k, nullptr), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      expect_near(y_gate.Download<float>(outputs_n), g, g_size, g_slack, "gate");
      expect_near(y_up.Download<float>(outputs_n), u, u_size, u_slack, "up");
      expect_near(y_v.Download<float>(outputs_third), vy, v_size, v_slack, "third target");
      const std::vector<float> fused = y_fused.Download<float>(outputs_n);
      for (size_t i = 0, failures = 0; i < outputs_n && failures < 5; ++i) {
        const double g_error = kGemvTolerance * g_size[i] + g_slack[i], u_error = kGemvTolerance * u_size[i] + u_slack[i];
        const double bound = 1.2 * g_error * (std::fabs(u[i]) + u_error) + u_error * std::fabs(GeluTanh(g[i])) + 1e-6;
        if (!(std::fabs(fused[i] - GeluTanh(g[i]) * u[i]) <= bound)) {
          ADD_FAILURE() << "fused output " << i << ": " << fused[i] << " vs " << GeluTanh(g[i]) * u[i];
          ++failures;
        }
      }
    }
    struct Wide {
      int64_t rows, k;
      bool int8;
    };
    for (const Wide& wide_case : {Wide{1, 65792, true}, Wide{2, 32768, true}, Wide{2, 33024, false}, Wide{8, 8192, true}, Wide{8, 8448, false}}) {
      {
        const int64_t rows = wide_case.rows, wide = wide_case.k;
        SCOPED_TRACE(std::string(DTypeName(dtype)) + " rows=" + std::to_string(rows) + " k=" + std::to_string(wide));
        const Weight w = MakeWeight(dtype, 5, wide, seed++);
        EXPECT_EQ(TakesInt8(w, rows), wide_case.int8);
        const std::vector<float> xw = Normal(static_cast<size_t>(rows * wide), 1.0f, seed++);
        std::vector<double> expected, size;
        Reference(w, xw, rows, &expected, &size);
        const std::vector<double> slack = TakesInt8(w, rows) ? Int8Slack(w, xw, rows) : std::vector<double>(expected.size(), 0.0);
        DeviceMemory xw_device(xw), yw(expected.size() * 4);
        const void* wide_weights[1] = {w.placed->as()};
        float* wide_outputs[1] = {yw.as<float>()};
        const int64_t five = 5;
        ASSERT_EQ(cuda::LaunchBlockGemv(xw_device.as<float>(), wide_weights, wide_outputs, &five, 1, nullptr, w.type(), rows, wide, nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        expect_near(yw.Download<float>(expected.size()), expected, size, slack, "wide x");
      }
    }
  }
}

TEST_F(QuantKernelTest, FusedGateUpAndProjectionsMatchTheReference) {
  const int64_t k = 768;
  uint32_t seed = 100;
  for (DType dtype : kFormats) {
    // Gate and up of 45 rows (odd), and q, k, v of 37, 1 and 64 rows in one launch.
    const Weight gate = MakeWeight(dtype, 45, k, seed++), up = MakeWeight(dtype, 45, k, seed++);
    const Weight q = MakeWeight(dtype, 37, k, seed++), kk = MakeWeight(dtype, 1, k, seed++), v = MakeWeight(dtype, 64, k, seed++);
    for (int64_t rows : {1, 3, 8}) {
      SCOPED_TRACE(std::string(DTypeName(dtype)) + " rows=" + std::to_string(rows));
      const std::vector<float> x = Normal(static_cast<size_t>(rows * k), 1.0f, seed++);
      DeviceMemory x_device(x), y_device(static_cast<size_t>(rows * 45) * 4);
      ASSERT_EQ(cuda::LaunchGemvGeluMul(x_device.as<float>(), gate.placed->as(), up.placed->as(), gate.type(), rows, 45, k, y_device.as<float>(),
                                        nullptr),
                cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<float> y = y_device.Download<float>(static_cast<size_t>(rows * 45));
      std::vector<double> g, g_size, u, u_size;
      Reference(gate, x, rows, &g, &g_size);
      Reference(up, x, rows, &u, &u_size);
      const bool int8 = TakesInt8(gate, rows);
      const std::vector<double> g_slack = int8 ? Int8Slack(gate, x, rows) : std::vector<double>(y.size(), 0.0);
      const std::vector<double> u_slack = int8 ? Int8Slack(up, x, rows) : std::vector<double>(y.size(), 0.0);
      for (size_t i = 0; i < y.size(); ++i) {
        // gelu' is at most ~1.13: the gate's error moves the output by at most 1.2 |u| err(g).
        const double expected = GeluTanh(g[i]) * u[i];
        const double g_error = kGemvTolerance * g_size[i] + g_slack[i], u_error = kGemvTolerance * u_size[i] + u_slack[i];
        const double bound = 1.2 * g_error * (std::fabs(u[i]) + u_error) + u_error * std::fabs(GeluTanh(g[i])) + 1e-6;
        ASSERT_LE(std::fabs(y[i] - expected), bound) << "output " << i;
      }
      const Weight* targets[3] = {&q, &kk, &v};
      DeviceMemory y0(static_cast<size_t>(rows * 37) * 4), y1(static_cast<size_t>(rows) * 4), y2(static_cast<size_t>(rows * 64) * 4);
      const void* weights[3] = {q.placed->as(), kk.placed->as(), v.placed->as()};
      float* outputs[3] = {y0.as<float>(), y1.as<float>(), y2.as<float>()};
      const int64_t ns[3] = {37, 1, 64};
      ASSERT_EQ(cuda::LaunchGemvMulti(x_device.as<float>(), weights, outputs, ns, 3, q.type(), rows, k, nullptr), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const DeviceMemory* out_memory[3] = {&y0, &y1, &y2};
      for (int t = 0; t < 3; ++t) {
        const std::vector<float> got = out_memory[t]->Download<float>(static_cast<size_t>(rows * ns[t]));
        std::vector<double> expected, size;
        Reference(*targets[t], x, rows, &expected, &size);
        const std::vector<double> slack = TakesInt8(*targets[t], rows) ? Int8Slack(*targets[t], x, rows) : std::vector<double>(got.size(), 0.0);
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_LE(std::fabs(got[i] - expected[i]), kGemvTolerance * size[i] + slack[i] + 1e-6) << "target " << t << " output " << i;
        }
      }
    }
  }
}

TEST_F(QuantKernelTest, EmbeddingRowsAreExactlyTheReferenceRowsTimesTheScale) {
  uint32_t seed = 200;
  for (DType dtype : kFormats) {
    SCOPED_TRACE(DTypeName(dtype));
    const int64_t rows = 23, width = 768;
    const Weight table = MakeWeight(dtype, rows, width, seed++);
    // An id outside the table (negative or past the end) reads row 0, as the element-type kernel.
    const std::vector<int32_t> ids = {0, 22, 5, 5, -1, 23, 11};
    const float scale = 27.712812f;  // sqrt(768)
    DeviceMemory ids_device(ids), out(ids.size() * width * 4);
    ASSERT_EQ(cuda::LaunchEmbed(ids_device.as<int32_t>(), table.placed->as(), table.type(), rows, static_cast<int64_t>(ids.size()), width,
                                scale, out.as<float>(), nullptr),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got = out.Download<float>(ids.size() * width);
    for (size_t t = 0; t < ids.size(); ++t) {
      const int64_t row = ids[t] >= 0 && ids[t] < rows ? ids[t] : 0;
      for (int64_t j = 0; j < width; ++j) {
        const float expected = table.values[row * width + j] * scale;
        ASSERT_EQ(std::memcmp(&got[t * width + j], &expected, 4), 0) << "token " << t << " element " << j << ": " << got[t * width + j]
                                                                       << " vs " << expected;
      }
    }
  }
}

TEST_F(QuantKernelTest, MoeWithBlockExpertsMatchesTheReference) {
  const int64_t hidden = 256, experts = 16, top_k = 4;
  const float eps = 1e-6f;
  uint32_t seed = 300;
  for (DType dtype : kFormats) {
    // Expert widths of whole blocks: 256 for the K-quants, 128 for F8, 96 for the 32-blocks.
    const int64_t width = DTypeBlockElements(dtype) == 256 ? 256 : dtype == DType::kF8_E4M3 ? 128 : 96;
    const Weight gate_up = MakeWeight(dtype, experts * 2 * width, hidden, seed++);
    const Weight down = MakeWeight(dtype, experts * hidden, width, seed++);
    const std::vector<float> router = Normal(static_cast<size_t>(experts * hidden), 1.0f, seed++);
    std::vector<float> router_scale = Normal(static_cast<size_t>(hidden), 0.1f, seed++), expert_scale = Normal(static_cast<size_t>(experts), 0.1f, seed++);
    for (float& s : router_scale) s += 1.0f;
    for (float& s : expert_scale) s += 1.0f;
    DeviceMemory router_device(router), router_scale_device(router_scale), expert_scale_device(expert_scale);
    // 7 tokens run as 4 + 3 through the same scratch.
    for (int64_t tokens : {1, 4, 7}) {
      SCOPED_TRACE(std::string(DTypeName(dtype)) + " tokens=" + std::to_string(tokens));
      const std::vector<float> x = Normal(static_cast<size_t>(tokens * hidden), 1.0f, seed++), h = Normal(static_cast<size_t>(tokens * hidden), 1.0f, seed++);
      DeviceMemory x_device(x), h_device(h), out(static_cast<size_t>(tokens * hidden) * 4),
          scratch(static_cast<size_t>(cuda::MoeDecodeScratchBytes(tokens, width, top_k)));
      ASSERT_TRUE(cuda::MoeDecodeSupports(WeightType::kF32, gate_up.type(), tokens, hidden, experts, width, top_k));
      ASSERT_EQ(cuda::LaunchMoeDecode(x_device.as<float>(), h_device.as<float>(), router_device.as(), router_scale_device.as(),
                                      expert_scale_device.as(), gate_up.placed->as(), down.placed->as(), WeightType::kF32, gate_up.type(),
                                      tokens, hidden, experts, width, top_k, eps, scratch.as(), out.as<float>(), nullptr),
                cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<float> got = out.Download<float>(static_cast<size_t>(tokens * hidden));
      for (int64_t t = 0; t < tokens; ++t) {
        // Routing as the kernel: rms-normed x (no weight) * router_scale / sqrt(hidden), softmax over
        // all experts, top_k renormalised, times each expert's scale.
        double squares = 0.0;
        for (int64_t j = 0; j < hidden; ++j) squares += static_cast<double>(x[t * hidden + j]) * x[t * hidden + j];
        const double inv = 1.0 / std::sqrt(squares / hidden + eps);
        std::vector<double> logits(experts, 0.0);
        for (int64_t e = 0; e < experts; ++e) {
          for (int64_t j = 0; j < hidden; ++j) logits[e] += router[e * hidden + j] * (x[t * hidden + j] * inv * router_scale[j] / std::sqrt(hidden));
        }
        std::vector<int64_t> order(experts);
        for (int64_t e = 0; e < experts; ++e) order[e] = e;
        std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
        const double max_logit = logits[order[0]];
        double all = 0.0, kept = 0.0;
        for (int64_t e = 0; e < experts; ++e) all += std::exp(logits[e] - max_logit);
        for (int64_t i = 0; i < top_k; ++i) kept += std::exp(logits[order[i]] - max_logit) / all;
        // act of each chosen expert, then the columns.
        std::vector<std::vector<double>> acts(static_cast<size_t>(top_k), std::vector<double>(static_cast<size_t>(width)));
        for (int64_t i = 0; i < top_k; ++i) {
          const int64_t e = order[i];
          for (int64_t r = 0; r < width; ++r) {
            double g = 0.0, u = 0.0;
            for (int64_t c = 0; c < hidden; ++c) {
              g += static_cast<double>(gate_up.values[(e * 2 * width + r) * hidden + c]) * h[t * hidden + c];
              u += static_cast<double>(gate_up.values[(e * 2 * width + width + r) * hidden + c]) * h[t * hidden + c];
            }
            acts[i][r] = GeluTanh(g) * u;
          }
        }
        for (int64_t j = 0; j < hidden; ++j) {
          double expected = 0.0, size = 0.0;
          for (int64_t i = 0; i < top_k; ++i) {
            const int64_t e = order[i];
            const double weight = std::exp(logits[e] - max_logit) / all / kept * expert_scale[e];
            double dot = 0.0, dot_size = 0.0;
            for (int64_t r = 0; r < width; ++r) {
              dot += down.values[(e * hidden + j) * width + r] * acts[i][r];
              dot_size += std::fabs(down.values[(e * hidden + j) * width + r] * acts[i][r]);
            }
            expected += weight * dot;
            size += std::fabs(weight) * dot_size;
          }
          // act carries its own f32 rounding (~1e-6 relative) into the down projection.
          ASSERT_LE(std::fabs(got[t * hidden + j] - expected), 1e-4 * size + 1e-5) << "token " << t << " column " << j;
        }
      }
    }
  }
}

TEST_F(QuantKernelTest, RandomBlocksAreValidWeights) {
  const int64_t n = 64, k = 768;
  const float spread = std::sqrt(3.0f / k);
  for (DType dtype : kFormats) {
    SCOPED_TRACE(DTypeName(dtype));
    const WeightType type = cuda::TypeOf(dtype);
    DeviceMemory placed(static_cast<size_t>(cuda::PlacedBlockBytes(type, n, k))), bf16(static_cast<size_t>(n * k) * 2);
    ASSERT_EQ(cuda::LaunchRandomBlocks(placed.as(), type, n, k, 7, spread, nullptr), cudaSuccess);
    ASSERT_EQ(cuda::LaunchDequantizeBlocks(placed.as(), type, n, k, 0, n, bf16.as(), nullptr), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<uint16_t> bits = bf16.Download<uint16_t>(static_cast<size_t>(n * k));
    double sum = 0.0, sum_abs = 0.0, largest = 0.0;
    for (uint16_t b : bits) {
      const float value = Bf16ToF32(b);
      ASSERT_TRUE(std::isfinite(value));
      sum += value;
      sum_abs += std::fabs(value);
      largest = std::max(largest, static_cast<double>(std::fabs(value)));
    }
    const double mean_abs = sum_abs / static_cast<double>(bits.size());
    EXPECT_GT(mean_abs, 0.02 * spread);
    EXPECT_LE(largest, 4.0 * spread);
    EXPECT_LT(std::fabs(sum / static_cast<double>(bits.size())), 0.5 * mean_abs);  // both signs, centred near zero
  }
}

}  // namespace
}  // namespace kiln
