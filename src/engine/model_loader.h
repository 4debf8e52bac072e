// Loading a model: config.json (+ safetensors) -> Gemma 4 Graph -> compiled, verified Program ->
// Sessions on a backend. The one path every front end uses (JIT today; AOT artifacts will load
// a serialized Program through the same Session).
//
//   TRY_ASSIGN(auto model, LoadedModel::Load("/models/gemma-4-12b", {.max_context = 8192}));
//   TRY_ASSIGN(Session session, model->NewSession());
//
// A bare config.json (no weights) loads too: its Program can be inspected and its plans
// verified, but NewSession() refuses it.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "compiler/program.h"
#include "io/safetensors.h"
#include "models/gemma4_config.h"
#include "runtime/session.h"

namespace kiln {

struct LoadOptions {
  int64_t max_tokens = 512;     // Tmax: prefill chunk bound
  int64_t max_context = 4096;   // Cmax
  int64_t num_layers = 0;       // > 0: keep only the first N layers (bisection)
  bool guard = false;           // canary bytes around every tensor, checked after every op
  int num_threads = 0;
};

class LoadedModel {
 public:
  // `path` is a checkpoint directory, or a config.json file (plan only).
  static Result<std::unique_ptr<LoadedModel>> Load(const std::string& path, const LoadOptions& options);

  Result<Session> NewSession(int num_threads = 0);

  const Gemma4Config& config() const { return config_; }
  const Program& program() const { return program_; }
  bool has_weights() const { return checkpoint_.has_value(); }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  Gemma4Config config_;
  std::optional<Checkpoint> checkpoint_;
  Program program_;
  CpuBackend backend_;
  LoadOptions options_;
};

}  // namespace kiln
