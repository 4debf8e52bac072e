// The Gemma 4 MTP assistant (docs/speculative.md §2): a four-layer drafter that reads its
// target's KV cache instead of keeping one, compiled into the target's Program as the "draft"
// step function.
//
// One draft step runs, for each token (one per speculating sequence), the assistant's layers at
// the position t of the target's newest sampled token x_t:
//   z = pre_projection(concat(target_embed(x)·√H_b, h))       h: the hidden state it continues from
//   four layers: Q-only attention over the target's cache positions before t (the sliding layers
//   over the last `window` of them, from the last sliding target layer that computes K/V; the
//   full layer from the last full one), RoPE at t, the Gemma 4 MLP, layer scalars
//   y = norm(z); outputs post_projection(y) (the next h) and logits = embed_tokens_mtp · y.
// The first step of a round takes h = the target's final-normed hidden state at t - 1; later
// steps feed back their own post_projection output and the argmax token, at the same t.
//
// Graph conventions: the drafter's weights are named "mtp." + the assistant checkpoint's name
// without its "model." prefix ("mtp.layers.0.self_attn.q_proj.weight", "mtp.pre_projection.weight");
// the input embedding is the target's own "embed_tokens.weight". The step's inputs are the six
// of a drafter (graph.h StepInput): its positions are t (RoPE) and its read positions t - 1 (the
// attention reads the target's cache through them).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "graph/graph.h"
#include "models/gemma4_config.h"

namespace kiln {

struct Gemma4AssistantConfig {
  std::string model_type;            // "gemma4_assistant" or "gemma4_unified_assistant"
  int64_t backbone_hidden_size = 0;  // H_b: the target's hidden size
  // E2B/E4B drafters rank tokens through centroids (use_ordered_embeddings): only the tokens of
  // the centroid_top_k best of num_centroids centroids get logits (a centroid_head op computes
  // only those).
  bool ordered_embeddings = false;
  int64_t num_centroids = 2048;
  int64_t centroid_top_k = 32;  // centroid_intermediate_top_k
  // Its text decoder: hidden size H_d, the four layers' geometry (every layer reads the target's
  // K/V, so none is treated as KV-shared here).
  Gemma4Config text;
};

// Whether a config.json document is a Gemma 4 assistant's.
bool IsGemma4AssistantConfig(const nlohmann::json& document);
// kMalformed / kUnsupported naming the field, as ParseGemma4Config.
Result<Gemma4AssistantConfig> ParseGemma4AssistantConfig(const nlohmann::json& document);

// The draft step's graph for `target` (whose step graph is `target_graph`, for its caches).
// kInvalidArgument naming what does not match: hidden size, vocabulary, the attention geometry
// of the target caches the assistant's layers read, or a target without a layer of each kind.
Result<Graph> BuildGemma4DraftGraph(const Gemma4Config& target, const Graph& target_graph, const Gemma4AssistantConfig& assistant);

}  // namespace kiln
