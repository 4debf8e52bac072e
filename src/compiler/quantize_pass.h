// The compiler's weight-quantization pass: "pick kernels -> pack/quantize weights" of the
// pipeline. It decides each weight's stored dtype; weight_packing.h converts the bytes.
//
// Runs after the weights are bound at their source dtypes and before the ops are checked and
// planned. For each weight, in Program::weights order, it takes the first dtype the recipe
// proposes (quant_recipe.h) that
//   - fits the weight's rows in whole blocks (DTypeRowsFit), and
//   - the target's catalog accepts for every op that reads the weight (KernelCatalog::CheckOp,
//     asked with the weight's value set to that dtype in every step graph),
// and otherwise keeps the source dtype. So a recipe never makes a compile fail because one
// backend lacks one kernel: that weight stays at source precision on that backend. The choice
// is written into WeightBinding::dtype (WeightBinding::source_dtype keeps the checkpoint's) and
// into the weight's value in every step graph.
#pragma once

#include <vector>

#include "compiler/kernel_catalog.h"
#include "compiler/program.h"
#include "compiler/quant_recipe.h"

namespace kiln {

// `steps` have their weights placed (PlaceInputsAndWeights) against `weights`. kNone changes
// nothing. Errors: ProposeDTypes's (a weight already quantized).
Status ApplyQuantRecipe(QuantRecipe recipe, const KernelCatalog& catalog, std::vector<WeightBinding>& weights,
                        std::vector<StepFunction>& steps);

// What the recipe sees of each binding: its name, source dtype, shape and the op inputs that
// read it in `steps`.
std::vector<WeightUse> WeightUses(const std::vector<WeightBinding>& weights, const std::vector<StepFunction>& steps);

}  // namespace kiln
