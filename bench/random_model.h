// Random-weight Gemma 4 checkpoints for benchmarks: speed does not depend on the values, so a
// model of any shape can be synthesized on the spot instead of downloaded.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/status.h"

namespace kiln {

// A gemma4_text config: every 5th layer (and the last) full attention with k_eq_v and one global
// KV head; no per-layer embeddings; softcap 30.
nlohmann::json GemmaConfig(int64_t vocab, int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                           int64_t head_dim, int64_t global_head_dim, int64_t intermediate, int64_t window);

// Writes config.json and bf16 model.safetensors with random weights (norms near 1) into `dir`.
Status WriteRandomModel(const std::filesystem::path& dir, const nlohmann::json& config);

}  // namespace kiln
