// Can this machine run code compiled for a target descriptor? The answer names what was
// expected, what this machine has, and what to do.
#pragma once

#include <string>

#include "artifact/artifact_file.h"

namespace kiln {

// The descriptor `kiln compile --target` writes: "cpu", "cpu:avx2", "cpu:avx512",
// "cpu:avx512bf16", "cuda", "cuda:sm_90". kInvalidArgument for anything else; kUnsupported for
// targets this kiln cannot compile for yet.
Result<TargetDescriptor> ParseTarget(const std::string& text);

// OK, or kUnsupported / kDeviceUnavailable explaining the mismatch. `what` names the file.
Status CheckTargetRunnable(const TargetDescriptor& target, const std::string& what);

// This host's architecture ("x86_64", "aarch64").
std::string HostArch();

}  // namespace kiln
