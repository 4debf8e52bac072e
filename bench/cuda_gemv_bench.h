// kiln_cuda_bench --gemv: the decode linear alone at the 12B's shapes, per weight format, against
// the copy bandwidth measured in the same run.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/status.h"

namespace kiln {

// Times LaunchGemv / LaunchGemvGeluMul for each format and row count; prints a table and fills
// `out` (format -> shape -> rows -> seconds, bytes, bytes_per_second).
Status BenchGemv(const std::vector<DType>& formats, const std::vector<int64_t>& row_counts, double bandwidth, nlohmann::json* out);

}  // namespace kiln
