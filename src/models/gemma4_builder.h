// Gemma 4 graph builder: config in, Graph out, nothing else (no weights, no backend knowledge).
//
// The graph follows docs/gemma4.md §4 op for op. Weight values carry the HF tensor name without
// its prefix ("layers.0.self_attn.q_proj.weight") and the shape the config implies; the compiler
// binds them to a checkpoint and reports a missing or mis-shaped tensor there.
#pragma once

#include "graph/graph.h"
#include "models/gemma4_config.h"

namespace kiln {

enum class LogitsMode : uint8_t {
  kLastPosition = 0,  // [1, vocab]: generation
  kAllPositions = 1,  // [T, vocab]: scoring, `kiln logits`
};

// Inputs: "token_ids" i32 [T], "positions" i32 [T]. Output: "logits" f32.
Result<Graph> BuildGemma4Graph(const Gemma4Config& config, LogitsMode logits_mode);

}  // namespace kiln
