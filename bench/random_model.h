// Random-weight Gemma 4 checkpoints for benchmarks: speed does not depend on the values, so a
// model of any shape can be synthesized on the spot instead of downloaded.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/dtype.h"
#include "core/status.h"
#include "engine/model_loader.h"

namespace kiln {

// A gemma4_text config: every 5th layer (and the last) full attention with k_eq_v and one global
// KV head; no per-layer embeddings; softcap 30.
nlohmann::json GemmaConfig(int64_t vocab, int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                           int64_t head_dim, int64_t global_head_dim, int64_t intermediate, int64_t window);

// Writes config.json and bf16 model.safetensors with random weights (norms near 1) into `dir`.
Status WriteRandomModel(const std::filesystem::path& dir, const nlohmann::json& config);

// Elements of every weight of `program` (its parameter count).
int64_t ParameterCount(const Program& program);

// The model WriteRandomModel writes for `config`, compiled for the CPU, with the weights the CPU
// kernels read by whole rows (linear, embedding, MoE: cpu::ReadsBlockRows) stored in a block
// format where their rows are whole blocks, quantized from the same random bf16 values; every
// other weight stays bf16. It lives in memory (no checkpoint format holds it):
//
//   TRY_ASSIGN(auto model, RandomQuantizedModel::Create(dir, config, DType::kQ4_0, bounds));
//   TRY_ASSIGN(Session session, model->NewSession(threads));
class RandomQuantizedModel {
 public:
  // `scratch_dir` holds the bf16 checkpoint while it is read, and is removed. Compiled at the
  // bounds of `bounds` (max_tokens, max_sequences, max_context, kv_block_size). With a non-empty
  // `dequantized_dir`, also writes there a checkpoint holding exactly the values the block
  // weights dequantize to (f32 for those, bf16 for the rest): the reference a quantized run is
  // compared with. kUnsupported when the CPU backend refuses an op with the chosen dtypes.
  static Result<std::unique_ptr<RandomQuantizedModel>> Create(const std::filesystem::path& scratch_dir,
                                                              const nlohmann::json& config, DType weight_dtype,
                                                              const LoadOptions& bounds,
                                                              const std::filesystem::path& dequantized_dir = {});
  const Program& program() const { return program_; }
  // A session of its own (the model placed for one sequence); the model must outlive it.
  Result<Session> NewSession(int num_threads);

 private:
  Program program_;
  CpuBackend backend_;
  std::vector<std::vector<uint8_t>> weights_;  // per Program::weights, as the kernels read them
};

}  // namespace kiln
