#include "backends/cuda/block_linear.h"

#include <algorithm>
#include <string>

#include "backends/cuda/kernels/block_gemv.cuh"
#include "backends/cuda/kernels/block_mma.cuh"
#include "backends/cuda/kernels/block_weights.cuh"

namespace kiln::cuda {

namespace {

int64_t Align256(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// Past the GEMV's rows (the caller checks those first).
bool TakesMma(WeightType type, int64_t rows, int64_t k) { return rows <= kBlockMmaMaxRows && BlockMmaSupports(type, k); }

Error Failure(cudaError_t status, const char* what) {
  return Error(status == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDeviceUnavailable,
               std::string("block-format linear: ") + what + ": " + cudaGetErrorString(status));
}

}  // namespace

int64_t DequantSlabRows(int64_t n, int64_t k, int64_t slab_bytes) {
  // cuBLASLt's algorithms assume 256-byte aligned operands (its default preference): a slab's
  // first column of y, first * 4 bytes into a row, is aligned when first is a multiple of 64.
  const int64_t fit = slab_bytes / (2 * k);
  return std::min(n, std::max<int64_t>(fit / 64 * 64, 64));
}

int64_t BlockLinearScratchBytes(WeightType type, int64_t rows, int64_t n, int64_t k, int64_t slab_bytes, BlockLinearPath path) {
  if (BlockGemvSupports(type, rows, k)) return 0;
  if (path == BlockLinearPath::kMma) return BlockMmaScratchBytes(rows, k);
  const int64_t slabs = Align256(rows * k * 2) + DequantSlabRows(n, k, slab_bytes) * k * 2;
  if (path == BlockLinearPath::kSlabs) return slabs;
  // Fewer rows than planned may take the int8 kernel: its scratch at the most rows it takes.
  const int64_t mma = BlockMmaSupports(type, k) ? BlockMmaScratchBytes(std::min(rows, kBlockMmaMaxRows), k) : 0;
  if (TakesMma(type, rows, k)) return mma;
  return std::max(mma, slabs);
}

Status RunBlockLinear(CublasLtGemm& gemm, const float* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y,
                      void* scratch, cudaStream_t stream, int64_t slab_bytes, BlockLinearPath path) {
  if (BlockGemvSupports(type, rows, k)) {
    float* outputs[1] = {y};
    const void* weights[1] = {w};
    if (cudaError_t s = LaunchBlockGemv(x, weights, outputs, &n, 1, nullptr, type, rows, k, stream); s != cudaSuccess) {
      return Failure(s, "GEMV");
    }
    return Status::Ok();
  }
  if (!scratch) return Error(ErrorCode::kInternal, "block-format linear of " + std::to_string(rows) + " rows has no scratch");
  if (path == BlockLinearPath::kMma || (path == BlockLinearPath::kAuto && TakesMma(type, rows, k))) {
    if (cudaError_t s = LaunchBlockMma(x, w, type, rows, n, k, y, scratch, stream); s != cudaSuccess) return Failure(s, "int8 tensor-core linear");
    return Status::Ok();
  }
  uint8_t* x_bf16 = static_cast<uint8_t*>(scratch);
  uint8_t* slab = x_bf16 + Align256(rows * k * 2);
  if (cudaError_t s = LaunchConvert(x, rows * k, WeightType::kBF16, x_bf16, stream); s != cudaSuccess) return Failure(s, "rounding x");
  const int64_t slab_rows = DequantSlabRows(n, k, slab_bytes);
  for (int64_t first = 0; first < n; first += slab_rows) {
    const int64_t count = std::min(slab_rows, n - first);
    if (cudaError_t s = LaunchDequantizeBlocks(w, type, n, k, first, count, slab, stream); s != cudaSuccess) return Failure(s, "dequantization");
    TRY(gemm.Run(x_bf16, slab, WeightType::kBF16, rows, count, k, y + first, stream, n));
  }
  return Status::Ok();
}

}  // namespace kiln::cuda
