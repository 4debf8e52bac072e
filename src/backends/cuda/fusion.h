// The op chains the CUDA backend runs as one kernel (kernels/fused.cuh, gemv.cuh): matched in a
// graph (the catalog's FusedGroups, so the planner keeps their values apart) and, per step, kept
// where the plan did so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "compiler/program.h"
#include "graph/graph.h"

namespace kiln::cuda {

// Op chains the placed model runs as one kernel (kernels/fused.cuh, gemv.cuh), found once per step.
// A fused kernel writes its outputs while it still reads its inputs, which the plan did not
// foresee (it placed them as separate ops), so a chain is fused only when the arena ranges of
// what it writes and what it reads are disjoint.
struct Fusion {
  enum class Kind { kNone, kGateUpGelu, kProjections, kResidualNorm, kHeadNormRope, kKvNormRopeAppend };
  Kind kind = Kind::kNone;
  size_t covered = 1;       // ops the kernel replaces, from this one on
  int32_t scalar_op = -1;   // kResidualNorm: the layer_scalar op, if fused
  int32_t next_norm_op = -1;  // kResidualNorm: the following rms_norm, if fused
};

// The fusable chain starting at op `i`, from the graph alone (covered 1: none).
Fusion MatchFusion(const Graph& graph, const std::vector<int>& uses, size_t i);
// Uses of each value by ops and outputs.
std::vector<int> UseCounts(const Graph& graph);
// The step's fusable chains, kept where the plan placed what they write apart from what they
// read (it does, for programs planned with this catalog; the check guards older plans).
std::vector<Fusion> FindFusions(const StepFunction& step);

}  // namespace kiln::cuda
