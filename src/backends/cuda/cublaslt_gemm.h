// Linear layers of more than a few rows (prefill) through cuBLASLt: y[rows, n] = x[rows, k] .
// w[n, k]^T with f32 output and f32 accumulation. bf16/f16 weights run on tensor cores with x
// given in the weight's type (the caller converts the f32 activations); f32 weights run in full
// f32 (no TF32), so f32 checkpoints keep the CPU backend's accuracy.
//
// cuBLASLt itself is loaded by Create (cublaslt_library.h), not linked. One instance per session: it owns the cuBLASLt handle and a workspace, and remembers the
// algorithm chosen for each shape, so a step pays the heuristic once per shape.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "backends/cuda/kernels/kernels.cuh"
#include "core/status.h"

namespace kiln::cuda {

struct CublasLtApi;

class CublasLtGemm {
 public:
  static constexpr int64_t kWorkspaceBytes = 32 << 20;

  static Result<std::unique_ptr<CublasLtGemm>> Create();
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // `x` is [rows, k] in the weight's element type (bf16, f16 or f32); `y` f32 [rows, n] with rows
  // `y_stride` floats apart (0: n; a slice of columns of a wider output). Enqueued on `stream`.
  Status Run(const void* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y,
             cudaStream_t stream, int64_t y_stride = 0);

 private:
  struct Plan;
  CublasLtGemm() = default;
  Result<const Plan*> PlanFor(WeightType type, int64_t rows, int64_t n, int64_t k, int64_t y_stride);

  const CublasLtApi* lt_ = nullptr;  // cublaslt_library.h: loaded on first use
  void* handle_ = nullptr;  // cublasLtHandle_t
  void* workspace_ = nullptr;
  std::map<std::tuple<int, int64_t, int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace kiln::cuda
