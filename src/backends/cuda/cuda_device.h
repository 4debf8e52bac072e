// CUDA device discovery. The CUDA backend is built whenever nvcc is present; on a machine with
// no GPU (or no driver) ProbeCudaDevice says so in words instead of failing obscurely.
#pragma once

#include <string>

#include "core/status.h"

namespace kiln::cuda {

struct CudaDeviceInfo {
  std::string name;
  int compute_capability_major = 0;
  int compute_capability_minor = 0;
  int multiprocessors = 0;
  size_t total_memory_bytes = 0;
  int driver_version = 0;   // e.g. 13000
  int runtime_version = 0;
};

// kDeviceUnavailable with the reason (no driver, no device, driver too old) when none is usable.
Result<CudaDeviceInfo> ProbeCudaDevice(int device_index = 0);

}  // namespace kiln::cuda
