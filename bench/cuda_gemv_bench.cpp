#include "cuda_gemv_bench.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "backends/cuda/block_linear.h"
#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/cuda_placed_model.h"
#include "backends/cuda/kernels/block_gemv.cuh"
#include "backends/cuda/kernels/block_layout.h"
#include "backends/cuda/kernels/block_mma.cuh"
#include "backends/cuda/kernels/block_weights.cuh"
#include "backends/cuda/kernels/gemv.cuh"
#include "backends/cuda/kernels/kernels.cuh"
#include "cuda_bench_util.h"

namespace kiln {

// The decode linear alone at the 12B's shapes, per weight format (see the header).
Status BenchGemv(const std::vector<DType>& formats, const std::vector<int64_t>& row_counts, double bandwidth, nlohmann::json* out) {
  struct Shape {
    const char* what;
    int64_t k, n;
    bool gelu_mul;  // gate and up: two matrices of n x k in one launch
  };
  const Shape shapes[] = {{"3840x15360 (gate)", 3840, 15360, false}, {"15360x3840 (down)", 15360, 3840, false},
                          {"3840x262144 (LM head)", 3840, 262144, false}, {"3840x15360 gate+up", 3840, 15360, true}};
  const int64_t max_rows = *std::max_element(row_counts.begin(), row_counts.end());
  std::printf("decode linear (GEMV) at 12B shapes; floor: weight bytes / copy bandwidth (%.0f GB/s)\n", bandwidth / 1e9);
  std::printf("  %-9s %-22s %4s %10s %10s %8s\n", "weights", "shape (in x out)", "rows", "us", "GB/s", "of copy");
  cudaStream_t stream = nullptr;
  CHECK_CUDA(cudaStreamCreate(&stream));
  void* x = nullptr;
  void* y = nullptr;
  CHECK_CUDA(cudaMalloc(&x, static_cast<size_t>(max_rows * 15360) * 4));
  CHECK_CUDA(cudaMalloc(&y, static_cast<size_t>(max_rows * 262144) * 4));
  CHECK_CUDA(cuda::LaunchRandomFill(x, cuda::WeightType::kF32, max_rows * 15360, 5, 0.0f, 1.0f, stream));
  // Past the GEMV's rows a block linear takes the int8 tensor-core kernel or bf16 slabs through
  // cuBLASLt (block_linear.h): both run, as "<format> mma" and "<format> slabs".
  auto gemm = cuda::CublasLtGemm::Create();
  if (!gemm) return gemm.error();
  void* scratch = nullptr;
  CHECK_CUDA(cudaMalloc(&scratch, static_cast<size_t>(std::max(
                                      cuda::BlockLinearScratchBytes(cuda::WeightType::kQ8_0, max_rows, 262144, 15360, cuda::kDequantSlabBytes,
                                                                    cuda::BlockLinearPath::kMma),
                                      cuda::BlockLinearScratchBytes(cuda::WeightType::kQ8_0, max_rows, 262144, 15360, cuda::kDequantSlabBytes,
                                                                    cuda::BlockLinearPath::kSlabs)))));
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (DType dtype : formats) {
    const cuda::WeightType type = cuda::TypeOf(dtype);
    for (const Shape& shape : shapes) {
      const int64_t placed = cuda::IsBlockWeight(type) ? cuda::PlacedBlockBytes(type, shape.n, shape.k) : DTypeBytes(dtype, shape.n * shape.k);
      const int64_t matrices = shape.gelu_mul ? 2 : 1;
      const int64_t bytes = matrices * DTypeBytes(dtype, shape.n * shape.k);  // what the format streams
      // Copies enough that the rotation exceeds L2 (50 MB on an H100) several times over.
      const int64_t copies = std::max<int64_t>(2, ((int64_t{256} << 20) + bytes - 1) / bytes);
      std::vector<void*> weights(static_cast<size_t>(copies * matrices), nullptr);
      for (size_t i = 0; i < weights.size(); ++i) {
        CHECK_CUDA(cudaMalloc(&weights[i], static_cast<size_t>(cuda::AlignUp(placed, 256))));
        const float spread = std::sqrt(3.0f / static_cast<float>(shape.k));
        CHECK_CUDA(cuda::IsBlockWeight(type) ? cuda::LaunchRandomBlocks(weights[i], type, shape.n, shape.k, 11 + i, spread, stream)
                                             : cuda::LaunchRandomFill(weights[i], type, shape.n * shape.k, 11 + i, 0.0f, spread, stream));
      }
      // Where one x row takes the int8-activation kernels, the f32 ones (BlockGemvMath::kF32) run
      // beside them, as "<format> f32x".
      enum class Variant { kDefault, kF32x, kMma, kSlabs };
      for (int64_t run = 0; run < 4 * static_cast<int64_t>(row_counts.size()); ++run) {
        const int64_t rows = row_counts[static_cast<size_t>(run / 4)];
        const Variant variant = static_cast<Variant>(run % 4);
        const bool past_gemv = cuda::IsBlockWeight(type) && rows > cuda::kBlockGemvMaxRows;
        if (variant == Variant::kF32x && !cuda::BlockGemvInt8Supports(type, rows, shape.k)) continue;
        if (variant == Variant::kDefault && !cuda::GemvSupports(type, rows, shape.k)) continue;  // bf16 above 4 rows runs on cuBLASLt
        if ((variant == Variant::kMma || variant == Variant::kSlabs) && (!past_gemv || shape.gelu_mul)) continue;
        if (variant == Variant::kMma && !cuda::BlockMmaSupports(type, shape.k)) continue;
        auto launch = [&](int64_t i) -> cudaError_t {
          void* const* w = &weights[static_cast<size_t>((i % copies) * matrices)];
          if (variant == Variant::kF32x) {
            float* outputs[1] = {static_cast<float*>(y)};
            return cuda::LaunchBlockGemv(static_cast<const float*>(x), w, outputs, &shape.n, 1, shape.gelu_mul ? w[1] : nullptr, type, rows,
                                         shape.k, stream, cuda::BlockGemvMath::kF32);
          }
          if (variant == Variant::kMma || variant == Variant::kSlabs) {
            const Status ran = cuda::RunBlockLinear(**gemm, static_cast<const float*>(x), w[0], type, rows, shape.n, shape.k, static_cast<float*>(y),
                                                    scratch, stream, cuda::kDequantSlabBytes,
                                                    variant == Variant::kMma ? cuda::BlockLinearPath::kMma : cuda::BlockLinearPath::kSlabs);
            return ran.ok() ? cudaSuccess : cudaErrorUnknown;
          }
          if (shape.gelu_mul) return cuda::LaunchGemvGeluMul(static_cast<const float*>(x), w[0], w[1], type, rows, shape.n, shape.k, static_cast<float*>(y), stream);
          return cuda::LaunchGemv(static_cast<const float*>(x), w[0], type, rows, shape.n, shape.k, static_cast<float*>(y), stream);
        };
        for (int64_t i = 0; i < copies; ++i) CHECK_CUDA(launch(i));  // warm up
        std::vector<double> seconds;
        for (int64_t i = 0; i < std::max<int64_t>(20, 2 * copies); ++i) {
          cudaEventRecord(start, stream);
          CHECK_CUDA(launch(i));
          cudaEventRecord(stop, stream);
          CHECK_CUDA(cudaEventSynchronize(stop));
          float ms = 0;
          cudaEventElapsedTime(&ms, start, stop);
          seconds.push_back(ms / 1e3);
        }
        const double median = Median(seconds);
        const double rate = static_cast<double>(bytes) / median;
        const char* suffixes[] = {"", " f32x", " mma", " slabs"};
        const std::string name = std::string(DTypeName(dtype)) + suffixes[static_cast<int>(variant)];
        std::printf("  %-9s %-22s %4lld %10.1f %10.0f %7.1f%%\n", name.c_str(), shape.what, static_cast<long long>(rows), median * 1e6,
                    rate / 1e9, 100.0 * rate / bandwidth);
        (*out)[name][shape.what][std::to_string(rows)] = {{"seconds", median}, {"bytes", bytes}, {"bytes_per_second", rate}};
      }
      for (void* w : weights) cudaFree(w);
    }
  }
  std::printf("\n");
  std::fflush(stdout);
  cudaFree(x);
  cudaFree(y);
  cudaFree(scratch);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return Status::Ok();
}

}  // namespace kiln
