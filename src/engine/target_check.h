// Can this machine run code compiled for a target descriptor? The answer names what was
// expected, what this machine has, and what to do.
#pragma once

#include <string>

#include "artifact/artifact_file.h"

namespace kiln {

// The descriptor `kiln compile --target` writes: "cpu", "cpu:avx2", "cpu:avx512",
// "cpu:avx512bf16", "cuda:sm_90" (any sm_NN / sm_NNN), or "cuda" for this machine's GPU.
// Compiling for CUDA needs no GPU when the sm is named: the Program depends only on the CUDA
// backend's catalog. A CUDA target records the CUDA runtime kiln was built with as the minimum
// driver. Errors: kInvalidArgument for a malformed descriptor; kUnsupported when this kiln was
// built without the CUDA backend; kDeviceUnavailable for plain "cuda" without a usable GPU.
Result<TargetDescriptor> ParseTarget(const std::string& text);

// OK, or kUnsupported / kDeviceUnavailable explaining the mismatch. `what` names the file.
// kDeviceUnavailable means no program of that kind can run here (no GPU, no CUDA backend, an old
// driver); kUnsupported that this one cannot (another CPU, another GPU).
Status CheckTargetRunnable(const TargetDescriptor& target, const std::string& what);

// This host's architecture ("x86_64", "aarch64").
std::string HostArch();

}  // namespace kiln
