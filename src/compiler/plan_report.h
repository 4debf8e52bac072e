// Human-readable reports of a Program's memory plans, for `kiln inspect --plan`.
#pragma once

#include <string>

#include "compiler/program.h"

namespace kiln {

// Bytes as "1.50 MiB".
std::string FormatBytes(int64_t bytes);

// Per step function: bounds, op count, arena vs lower bound, the largest tensors and the peak of
// live bytes inside each layer ("layers.N." op name prefix).
std::string FormatPlanReport(const Program& program, int largest_tensors = 5);

}  // namespace kiln
