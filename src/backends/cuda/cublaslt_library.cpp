#include "backends/cuda/cublaslt_library.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace kiln::cuda {

namespace {

Result<CublasLtApi> Load() {
  const std::string name = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = dlerror();
    return Error(ErrorCode::kDeviceUnavailable, "cannot load " + name + " (cuBLASLt, part of the CUDA toolkit): " +
                                                    (why ? why : "unknown error"));
  }
  CublasLtApi api;
  std::string missing;
  auto resolve = [&](auto& function, const char* symbol) {
    function = reinterpret_cast<std::remove_reference_t<decltype(function)>>(dlsym(library, symbol));
    if (function == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(symbol);
  };
  resolve(api.Create, "cublasLtCreate");
  resolve(api.Destroy, "cublasLtDestroy");
  resolve(api.Matmul, "cublasLtMatmul");
  resolve(api.MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
  resolve(api.MatmulDescCreate, "cublasLtMatmulDescCreate");
  resolve(api.MatmulDescDestroy, "cublasLtMatmulDescDestroy");
  resolve(api.MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
  resolve(api.MatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
  resolve(api.MatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
  resolve(api.MatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
  resolve(api.MatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
  resolve(api.MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
  if (!missing.empty()) {
    dlclose(library);
    return Error(ErrorCode::kDeviceUnavailable, name + " lacks " + missing);
  }
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

Result<const CublasLtApi*> LoadCublasLt() {
  static std::once_flag once;
  static Result<CublasLtApi> loaded = Error(ErrorCode::kInternal, "cuBLASLt not loaded");
  std::call_once(once, [] { loaded = Load(); });
  if (!loaded.has_value()) return loaded.error();
  return &*loaded;
}

}  // namespace kiln::cuda
