#include "backends/cuda/cublaslt_gemm.h"

#include "backends/cuda/cublaslt_library.h"

#include <string>

namespace kiln::cuda {

namespace {

Error LtFailure(cublasStatus_t status, const std::string& what) {
  return Error(ErrorCode::kDeviceUnavailable, "cuBLASLt " + what + " failed (status " + std::to_string(static_cast<int>(status)) + ")");
}

cudaDataType_t DataType(WeightType type) {
  switch (type) {
    case WeightType::kBF16: return CUDA_R_16BF;
    case WeightType::kF16: return CUDA_R_16F;
    case WeightType::kF32: return CUDA_R_32F;
    // Block formats reach cuBLASLt dequantized to bf16 (block_linear.h), never as themselves.
    case WeightType::kQ8_0:
    case WeightType::kQ4_0:
    case WeightType::kQ4_K:
    case WeightType::kQ6_K:
    case WeightType::kF8E4M3:
    case WeightType::kQ5_0:
    case WeightType::kQ5_1:
    case WeightType::kQ4_1:
    case WeightType::kQ5_K: break;
  }
  return CUDA_R_32F;
}

}  // namespace

struct CublasLtGemm::Plan {
  const CublasLtApi* lt = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  explicit Plan(const CublasLtApi* api) : lt(api) {}
  ~Plan() {
    if (a) lt->MatrixLayoutDestroy(a);
    if (b) lt->MatrixLayoutDestroy(b);
    if (c) lt->MatrixLayoutDestroy(c);
    if (desc) lt->MatmulDescDestroy(desc);
  }
};

Result<std::unique_ptr<CublasLtGemm>> CublasLtGemm::Create() {
  TRY_ASSIGN(const CublasLtApi* lt, LoadCublasLt());
  std::unique_ptr<CublasLtGemm> gemm(new CublasLtGemm());
  gemm->lt_ = lt;
  cublasLtHandle_t handle = nullptr;
  if (cublasStatus_t s = lt->Create(&handle); s != CUBLAS_STATUS_SUCCESS) return LtFailure(s, "initialisation");
  gemm->handle_ = handle;
  if (cudaError_t s = cudaMalloc(&gemm->workspace_, kWorkspaceBytes); s != cudaSuccess) {
    return Error(ErrorCode::kOutOfMemory, std::string("cannot allocate the cuBLASLt workspace: ") + cudaGetErrorString(s));
  }
  return gemm;
}

CublasLtGemm::~CublasLtGemm() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (handle_) lt_->Destroy(static_cast<cublasLtHandle_t>(handle_));
}

// Row-major y[rows, n] = x[rows, k] . w[n, k]^T is, column-major, y^T[n, rows] = op_T(W[k, n]) . X[k, rows]:
// the weight is the transposed A operand and nothing is copied.
Result<const CublasLtGemm::Plan*> CublasLtGemm::PlanFor(WeightType type, int64_t rows, int64_t n, int64_t k, int64_t y_stride) {
  const auto key = std::make_tuple(static_cast<int>(type), rows, n, k, y_stride);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();
  auto plan = std::make_unique<Plan>(lt_);
  const cudaDataType_t in = DataType(type);
  // f32 weights: full f32 products (CUBLAS_COMPUTE_32F never uses TF32).
  if (auto s = lt_->MatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F); s != CUBLAS_STATUS_SUCCESS) return LtFailure(s, "descriptor");
  const cublasOperation_t transpose = CUBLAS_OP_T;
  lt_->MatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose));
  if (auto s = lt_->MatrixLayoutCreate(&plan->a, in, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k); s != CUBLAS_STATUS_SUCCESS) return LtFailure(s, "layout");
  if (auto s = lt_->MatrixLayoutCreate(&plan->b, in, static_cast<uint64_t>(k), static_cast<uint64_t>(rows), k); s != CUBLAS_STATUS_SUCCESS) return LtFailure(s, "layout");
  if (auto s = lt_->MatrixLayoutCreate(&plan->c, CUDA_R_32F, static_cast<uint64_t>(n), static_cast<uint64_t>(rows), y_stride); s != CUBLAS_STATUS_SUCCESS) return LtFailure(s, "layout");
  cublasLtMatmulPreference_t preference = nullptr;
  lt_->MatmulPreferenceCreate(&preference);
  const uint64_t workspace = kWorkspaceBytes;
  lt_->MatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t s = lt_->MatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(handle_), plan->desc, plan->a, plan->b, plan->c,
                                                          plan->c, preference, 1, &result, &found);
  lt_->MatmulPreferenceDestroy(preference);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
    return Error(ErrorCode::kUnsupported, "cuBLASLt has no algorithm for a " + std::to_string(rows) + "x" + std::to_string(k) + " by " +
                                              std::to_string(n) + "x" + std::to_string(k) + " product");
  }
  plan->algo = result.algo;
  const Plan* raw = plan.get();
  plans_.emplace(key, std::move(plan));
  return raw;
}

Status CublasLtGemm::Run(const void* x, const void* w, WeightType type, int64_t rows, int64_t n, int64_t k, float* y,
                         cudaStream_t stream, int64_t y_stride) {
  if (IsBlockWeight(type)) return Error(ErrorCode::kInternal, "cuBLASLt takes bf16, f16 or f32 operands, not block formats");
  TRY_ASSIGN(const Plan* plan, PlanFor(type, rows, n, k, y_stride > 0 ? y_stride : n));
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t s = lt_->Matmul(static_cast<cublasLtHandle_t>(handle_), plan->desc, &alpha, w, plan->a, x, plan->b, &beta, y,
                                          plan->c, y, plan->c, &plan->algo, workspace_, kWorkspaceBytes, stream);
  if (s != CUBLAS_STATUS_SUCCESS) return LtFailure(s, "matmul");
  return Status::Ok();
}

}  // namespace kiln::cuda
