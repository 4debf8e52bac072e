// Binary encoding of a Program, the "program" section of a .kiln file.
//
// Encoded: bounds, weight bindings (with each weight's offset in the weights section), cache
// dtype, and per step function its graph and the planner's offsets. Not encoded: anything
// derivable — requests, lifetimes, scratch sizes, placements and cache capacities are recomputed
// at decode from the graph (deterministically, as the compiler did) and the stored plan is
// verified against them. A decoded Program is therefore exactly as trustworthy as a compiled one,
// whatever the bytes were.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "compiler/kernel_catalog.h"
#include "compiler/program.h"

namespace kiln {

std::vector<uint8_t> EncodeProgram(const Program& program, std::span<const uint64_t> weight_offsets);

struct DecodedProgram {
  Program program;
  std::vector<uint64_t> weight_offsets;  // per Program::weights, into the weights section
};

// kMalformed naming the first problem; kPlanInvalid if a plan does not verify.
Result<DecodedProgram> DecodeProgram(std::span<const uint8_t> bytes, const KernelCatalog& catalog);

}  // namespace kiln
