// What a quantization recipe did to a Program's weights, for `kiln inspect`.
//
//   quant     q4_k_m: 43 of 75 weights packed; 33.22 MiB as stored in the source -> 12.10 MiB
//             token embedding  q8_0      1 tensor      3.19 MiB  (bf16: 6.00 MiB)
//             matrices         q4_0     40 tensors     7.03 MiB  (bf16: 24.98 MiB)
//             ...
//             kept             bf16     32 tensors    12.75 KiB
//
// One line per (role, stored dtype, source dtype) group, in role order (quant_recipe.h's
// WeightRole); a Program compiled without a recipe gets the first line only.
#pragma once

#include <string>

#include "compiler/program.h"

namespace kiln {

struct QuantGroup {
  WeightRole role = WeightRole::kKeep;
  DType dtype = DType::kBF16;
  DType source_dtype = DType::kBF16;
  int64_t count = 0;
  int64_t bytes = 0;         // as stored
  int64_t source_bytes = 0;  // as the source stores them
};

// The weights grouped by role and dtype, in role then dtype order.
std::vector<QuantGroup> GroupWeightsByRole(const Program& program);

// The report above, lines ending in '\n', each after a 10-column label gutter.
std::string FormatQuantReport(const Program& program);

}  // namespace kiln
