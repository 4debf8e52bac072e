#include <cuda_runtime.h>

#include "backends/cuda/cuda_device.h"

namespace kiln::cuda {

Result<CudaDeviceInfo> ProbeCudaDevice(int device_index) {
  CudaDeviceInfo info;
  cudaRuntimeGetVersion(&info.runtime_version);
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess || info.driver_version == 0) {
    return Error(ErrorCode::kDeviceUnavailable, "no NVIDIA driver is installed on this machine; use --device cpu");
  }
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    return Error(ErrorCode::kDeviceUnavailable,
                 std::string("no CUDA device found (") + cudaGetErrorString(status) + "); use --device cpu");
  }
  if (info.driver_version < info.runtime_version) {
    return Error(ErrorCode::kDeviceUnavailable, "the NVIDIA driver supports CUDA " + std::to_string(info.driver_version) +
                                                    " but kiln was built with CUDA " + std::to_string(info.runtime_version) +
                                                    "; update the driver");
  }
  if (device_index < 0 || device_index >= count) {
    return Error(ErrorCode::kInvalidArgument, "CUDA device " + std::to_string(device_index) + " does not exist (" +
                                                  std::to_string(count) + " found)");
  }
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, device_index);
  info.name = properties.name;
  info.compute_capability_major = properties.major;
  info.compute_capability_minor = properties.minor;
  info.multiprocessors = properties.multiProcessorCount;
  info.total_memory_bytes = properties.totalGlobalMem;
  return info;
}

}  // namespace kiln::cuda
