// kiln_cuda_bench --constraint-vocab GGUF: the pipelined decode of a model under an output
// constraint (structured output), next to the same decode without one. The constraint's
// vocabulary is a real tokenizer's (Gemma 4's 262,144 tokens for the released shapes); the
// weights are the bench's random ones, so what the model writes is arbitrary JSON, and the cost
// measured is the constraint's: the mask of step k+1 computed on the host while step k+1 runs,
// applied on the device before the draw.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/session.h"

namespace kiln {

namespace constraint {
class TokenVocabulary;
}

struct ConstrainedDecodeRun {
  std::string name;          // "json" (any JSON object) or "schema" (a tool-call schema)
  double tokens_per_second;  // tokens over the wall time of the decode calls
  int64_t tokens;
  double mask_median_us, mask_p99_us;  // host time of one allowed-token mask
};

Result<std::shared_ptr<const constraint::TokenVocabulary>> LoadConstraintVocabulary(const std::string& gguf_path);

// From a session holding `start_length` positions, `steps` greedy tokens per constraint, fed
// `first` first, 4 steps in flight. A generation that the grammar ends early starts again from
// `start_length` until `steps` tokens have run.
Result<std::vector<ConstrainedDecodeRun>> RunConstrainedDecodes(Session& session, int64_t start_length, int32_t first, int64_t steps,
                                                                const std::shared_ptr<const constraint::TokenVocabulary>& vocabulary);

}  // namespace kiln
