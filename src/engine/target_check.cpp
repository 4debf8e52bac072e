#include "engine/target_check.h"

#include "backends/cpu/simd/dot.h"
#if KILN_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backends/cuda/cuda_device.h"
#endif

namespace kiln {

std::string HostArch() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "unknown";
#endif
}

namespace {

std::string SupportedIsas() {
  std::string list;
  for (const cpu::DotKernels* table : cpu::SupportedDotKernels()) list += (list.empty() ? "" : ", ") + std::string(table->isa);
  return list;
}

// "sm_90" -> 90; 0 when malformed.
int ParseSm(const std::string& text) {
  if (text.size() < 5 || text.size() > 6 || text.rfind("sm_", 0) != 0) return 0;
  int sm = 0;
  for (size_t i = 3; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return 0;
    sm = sm * 10 + (text[i] - '0');
  }
  return sm >= 10 ? sm : 0;
}

#if KILN_HAVE_CUDA
// The probe's reason without its advice ("no CUDA device found (...)"): callers give their own.
std::string ProbeReason(const Error& error) { return error.message().substr(0, error.message().find("; ")); }
#endif

}  // namespace

Result<TargetDescriptor> ParseTarget(const std::string& text) {
  TargetDescriptor target;
  target.arch = HostArch();
  if (text == "cpu") return target;
  if (text.rfind("cpu:", 0) == 0) {
    target.cpu_isa = text.substr(4);
    for (const char* isa : {"generic", "avx2", "avx512", "avx512bf16"}) {
      if (target.cpu_isa == isa) return target;
    }
    return Error(ErrorCode::kInvalidArgument, "unknown CPU kernel set '" + target.cpu_isa + "' (expected generic, avx2, avx512 or avx512bf16)");
  }
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    target.kind = "cuda";
    if (text != "cuda") {
      target.cuda_sm = ParseSm(text.substr(5));
      if (target.cuda_sm == 0) {
        return Error(ErrorCode::kInvalidArgument, "malformed CUDA target '" + text + "' (expected cuda:sm_XX, e.g. cuda:sm_90 for H100/H200)");
      }
    }
#if KILN_HAVE_CUDA
    // The driver must be at least as new as the runtime kiln was built with (what the probe checks).
    target.cuda_min_driver = CUDART_VERSION;
    if (target.cuda_sm == 0) {
      auto device = cuda::ProbeCudaDevice(0);
      if (!device) {
        return Error(ErrorCode::kDeviceUnavailable, "--target cuda compiles for this machine's GPU, but " + ProbeReason(device.error()) +
                                                        "; name the target, e.g. --target cuda:sm_90");
      }
      target.cuda_sm = device->compute_capability_major * 10 + device->compute_capability_minor;
    }
    return target;
#else
    return Error(ErrorCode::kUnsupported, "kiln cannot compile for " + text + ": it was built without the CUDA backend (no nvcc at build time); "
                                          "rebuild kiln with the CUDA toolkit, or use --target cpu");
#endif
  }
  return Error(ErrorCode::kInvalidArgument, "unknown target '" + text + "' (expected cpu, cpu:ISA or cuda[:sm_XX])");
}

Status CheckTargetRunnable(const TargetDescriptor& target, const std::string& what) {
  const std::string compiled = what + " was compiled for " + target.ToString();
  if (target.kind == "cpu") {
    if (target.arch != HostArch()) {
      return Error(ErrorCode::kUnsupported, compiled + ", this machine is " + HostArch() + "; recompile it here with --target cpu");
    }
    if (target.cpu_isa == "any") return Status::Ok();
    for (const cpu::DotKernels* table : cpu::SupportedDotKernels()) {
      if (target.cpu_isa == table->isa) return Status::Ok();
    }
    return Error(ErrorCode::kUnsupported, compiled + ", this CPU supports only " + SupportedIsas() +
                                              "; recompile with --target cpu (runs on any x86-64 CPU)");
  }
  if (target.kind == "cuda") {
#if KILN_HAVE_CUDA
    auto device = cuda::ProbeCudaDevice(0);
    if (!device) {
      return Error(ErrorCode::kDeviceUnavailable, compiled + ", but " + ProbeReason(device.error()) +
                                                      "; run it on a machine with that GPU, or recompile with --target cpu");
    }
    const int sm = device->compute_capability_major * 10 + device->compute_capability_minor;
    if (sm != target.cuda_sm) {
      return Error(ErrorCode::kUnsupported, compiled + ", this machine's GPU (" + device->name + ") is sm_" + std::to_string(sm) +
                                                "; recompile with --target cuda:sm_" + std::to_string(sm));
    }
    if (device->driver_version < target.cuda_min_driver) {
      return Error(ErrorCode::kDeviceUnavailable, compiled + ", which needs NVIDIA driver CUDA version " + std::to_string(target.cuda_min_driver) +
                                                      " or newer, this machine has " + std::to_string(device->driver_version) + "; update the driver");
    }
    return Status::Ok();
#else
    return Error(ErrorCode::kDeviceUnavailable, compiled + ", but this kiln was built without the CUDA backend (no nvcc at build time); "
                                                "recompile with --target cpu");
#endif
  }
  return Error(ErrorCode::kUnsupported, compiled + ", a target kind this kiln does not know; recompile with --target cpu");
}

}  // namespace kiln
