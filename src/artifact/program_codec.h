// Binary encoding of a Program, the "program" section of a .kiln file.
//
// Encoded: bounds, cache dtype, the quantization recipe, weight bindings (stored and source dtype,
// and each weight's offset in the weights section), and per step function its graph and the planner's offsets. Not encoded: anything
// derivable — requests, lifetimes, scratch sizes, placements and cache capacities are recomputed
// at decode from the graph (deterministically, as the compiler did) and the stored plan is
// verified against them. A decoded Program is therefore exactly as trustworthy as a compiled one,
// whatever the bytes were.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "compiler/kernel_catalog.h"
#include "compiler/program.h"

namespace kiln {

std::vector<uint8_t> EncodeProgram(const Program& program, std::span<const uint64_t> weight_offsets);

struct DecodedProgram {
  Program program;
  std::vector<uint64_t> weight_offsets;  // per Program::weights, into the weights section
};

// kMalformed naming the first problem; kPlanInvalid if a plan does not verify. The program must
// have been compiled for `catalog`'s kind of backend. Its KV cache dtype is f32 or bf16 (the
// target's choice at compile time); whether a backend runs that dtype is its session's check.
Result<DecodedProgram> DecodeProgram(std::span<const uint8_t> bytes, const KernelCatalog& catalog);

// The kind of backend a catalog is ("cpu", "cuda"): its target name up to the first space
// ("cpu (avx2)" -> "cpu"). Artifact headers name their target by this kind.
std::string BackendKind(const KernelCatalog& catalog);

}  // namespace kiln
