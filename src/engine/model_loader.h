// Loading a model: config.json (+ safetensors) -> Gemma 4 Graph -> compiled, verified Program ->
// Sessions on a backend. The one path every front end uses (JIT today; AOT artifacts will load
// a serialized Program through the same Session).
//
//   TRY_ASSIGN(auto model, LoadedModel::Load("/models/gemma-4-12b", {.max_context = 8192}));
//   TRY_ASSIGN(Session session, model->NewSession());
//
// A bare config.json (no weights) loads too: its Program can be inspected and its plans
// verified, but NewSession() refuses it.
//
// A .kiln artifact loads with no planning and no weight conversion: its Program is decoded and
// verified, its weights used in place from the mmap. When it cannot be used here (another format
// version, a target this machine cannot run, a context larger than it was compiled for, a
// damaged file) and its source checkpoint is at hand (LoadOptions::source, or the path recorded
// in the file), the model is compiled from the source instead and on_notice says so; with
// allow_fallback = false the error is returned.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <functional>

#include "artifact/artifact_file.h"
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
  std::string device = "cpu";     // "cpu" | "cuda" (checkpoints; artifacts run on the CPU)
  // Artifacts only:
  int64_t required_context = 0;   // > 0: fail (or fall back) if compiled for less
  std::string source;             // checkpoint to fall back to (default: the one recorded)
  bool allow_fallback = true;
  bool verify_weights = false;    // also check the weights section's checksum
  std::function<void(const std::string&)> on_notice;  // default: print to stderr
};

class LoadedModel {
 public:
  // `path` is a checkpoint directory, a .kiln artifact, or a config.json file (plan only).
  static Result<std::unique_ptr<LoadedModel>> Load(const std::string& path, const LoadOptions& options);

  Result<Session> NewSession(int num_threads = 0);

  const Gemma4Config& config() const { return config_; }
  const Program& program() const { return program_; }
  bool has_weights() const { return checkpoint_.has_value() || artifact_ != nullptr; }
  const std::string& source() const { return source_; }
  // The artifact this model was loaded from, or nullptr (JIT).
  const Artifact* artifact() const { return artifact_.get(); }
  const Checkpoint* checkpoint() const { return checkpoint_ ? &*checkpoint_ : nullptr; }
  const Backend& backend() const { return *backend_; }
  // The bytes of every weight, in Program::weights order.
  std::vector<std::span<const uint8_t>> WeightBytes() const;
  // A text file of the source model ("config.json", "tokenizer.json", ...), if it has one.
  std::optional<std::string> SourceFile(const std::string& name) const;

 private:
  static Result<std::unique_ptr<LoadedModel>> LoadCheckpoint(const std::string& path, const LoadOptions& options);
  static Result<std::unique_ptr<LoadedModel>> LoadArtifact(const std::string& path, const LoadOptions& options);

  std::string source_;
  Gemma4Config config_;
  std::optional<Checkpoint> checkpoint_;
  std::unique_ptr<Artifact> artifact_;
  Program program_;
  std::unique_ptr<Backend> backend_;
  LoadOptions options_;
};

}  // namespace kiln
