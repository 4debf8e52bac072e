// kiln_cuda_bench --verify: the cost of a speculative verify step against a decode step.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "runtime/session.h"

namespace kiln {

// One sequence at `position` (its cache holding that many tokens) runs a step of T tokens with
// every row's logits (T = k drafted tokens + 1: the first T of `tokens`, which holds at least the
// largest T), then rewinds; the median step time against a one-token decode step's
// (decode_seconds, measured the same way). From them, the speedup at acceptance rate a with a
// drafter that costs nothing (prompt lookup): a step yields (1 - a^T) / (1 - a) tokens in
// expectation, each worth one decode step. Derived from the measured step costs, printed as such.
Result<nlohmann::json> BenchVerify(Session& session, int64_t position, const std::vector<int32_t>& tokens,
                                   const std::vector<int64_t>& verifies, int64_t steps, double decode_seconds);

// With an MTP drafter compiled in (--mtp): one drafter step of the sequence (its cache as
// BenchVerify left it, the draft drawn greedily on the device) against the decode step, and the
// speedup BenchVerify's step costs (`verify`, its result) imply once each round also pays T - 1
// drafter steps. Derived, printed as such.
Result<nlohmann::json> BenchDrafter(Session& session, int32_t token, int64_t steps, double decode_seconds, const nlohmann::json& verify);

}  // namespace kiln
