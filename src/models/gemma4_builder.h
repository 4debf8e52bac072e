// Gemma 4 graph builder: config in, Graph out, nothing else (no weights, no backend knowledge).
//
// The graph follows docs/gemma4.md §4 op for op. Weight values carry the HF tensor name without
// its prefix ("layers.0.self_attn.q_proj.weight") and the shape the config implies; the compiler
// binds them to a checkpoint and reports a missing or mis-shaped tensor there.
#pragma once

#include "graph/graph.h"
#include "models/gemma4_config.h"

namespace kiln {

// Inputs (StepInput order): "token_ids", "positions", "sequences" i32 [T], "logit_rows" i32 [R].
// Output: "logits" f32 [R, vocab]; with `hidden_output`, first the final-normed hidden state
// "norm" f32 [R, hidden] the logits come from (what an MTP drafter continues from). One graph
// serves every step function: generation asks for the last row of each sequence, scoring for
// every row.
Result<Graph> BuildGemma4Graph(const Gemma4Config& config, bool hidden_output = false);

}  // namespace kiln
