// cuBLASLt, loaded when a CUDA model is first placed rather than when kiln starts.
//
// Linking libcublasLt makes every kiln process pay for it at startup: the dynamic loader maps and
// relocates about 200 MiB of it before main, whether or not a GPU is ever used, so a CPU run of
// a CUDA build peaked at 4x the memory of a CPU-only build. The backend calls cuBLASLt through
// this table instead, filled by dlopen on first use.
#pragma once

#include <cublasLt.h>

#include "core/status.h"

namespace kiln::cuda {

struct CublasLtApi {
  decltype(&cublasLtCreate) Create = nullptr;
  decltype(&cublasLtDestroy) Destroy = nullptr;
  decltype(&cublasLtMatmul) Matmul = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) MatmulAlgoGetHeuristic = nullptr;
  decltype(&cublasLtMatmulDescCreate) MatmulDescCreate = nullptr;
  decltype(&cublasLtMatmulDescDestroy) MatmulDescDestroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) MatmulDescSetAttribute = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) MatmulPreferenceCreate = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) MatmulPreferenceDestroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) MatmulPreferenceSetAttribute = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) MatrixLayoutCreate = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) MatrixLayoutDestroy = nullptr;
};

// The library of the major version kiln was built against (libcublasLt.so.<major>), loaded
// once per process. kDeviceUnavailable with the loader's words when it cannot be loaded or
// lacks a function.
Result<const CublasLtApi*> LoadCublasLt();

}  // namespace kiln::cuda
