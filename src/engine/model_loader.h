// Loading a model: config.json (+ safetensors) -> the family's Graph -> compiled, verified Program ->
// Sessions on a backend. The one path every front end uses, JIT and AOT alike.
//
//   TRY_ASSIGN(auto model, LoadedModel::Load("/models/gemma-4-12b", {.max_context = 8192}));
//   TRY_ASSIGN(Session session, model->NewSession());
//
// A bare config.json (no weights) loads too: its Program can be inspected and its plans
// verified, but NewSession() refuses it.
//
// Devices: a checkpoint is compiled for LoadOptions::device (the CPU by default); an artifact
// runs on the device of the target it was compiled for, and an explicit device that disagrees is
// kInvalidArgument naming both. Planning needs no device: with plan_only (inspect, compile) a
// CUDA program is compiled, or a CUDA artifact decoded, on a machine without a GPU; a session on
// it is refused (kDeviceUnavailable) with the reason. Without plan_only, a missing GPU is said
// at load.
//
// Quantized weights: LoadOptions::quant names a recipe (compiler/quant_recipe.h) under which a
// checkpoint's weights are stored in block formats where the target runs them. The Program
// records each weight's stored and source dtype; the source tensors are packed into owned
// buffers (on LoadOptions::num_threads threads) the first time weight bytes are asked for —
// NewSession, NewRunner, WeightBytes — and `kiln compile` writes those same bytes into the
// artifact. A recipe on a .kiln artifact is kInvalidArgument: its weights were packed when it
// was compiled (its fallback to the source compiles with the recipe recorded in the file).
//
// A .kiln artifact loads with no planning and no weight conversion: its Program is decoded and
// verified, its weights used in place from the mmap. When it cannot be used here (another format
// version, a target this machine cannot run, a context larger than it was compiled for, a
// damaged file) and its source checkpoint is at hand (LoadOptions::source, or the path recorded
// in the file), the model is compiled from the source instead, for the same device, and
// on_notice says so; with allow_fallback = false the error is returned. A fallback never changes
// the device: when the artifact's device is unavailable here (a CUDA artifact on a machine
// without a usable GPU), compiling for it would fail as well, so the error is returned, naming
// the source to run on the CPU instead.
#pragma once

#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <functional>

#include "artifact/artifact_file.h"
#include "backends/cpu/cpu_backend.h"
#include "compiler/program.h"
#include "io/safetensors.h"
#include "models/model_family.h"
#include "runtime/session.h"

namespace kiln {

class GgufSource;  // engine/gguf_source.h

struct LoadOptions {
  int64_t max_tokens = 512;     // Tmax: most tokens a step runs (the prefill chunk bound)
  int64_t max_sequences = 1;    // Smax: most sequences a step runs (--parallel)
  int64_t max_context = 4096;   // Cmax: positions one sequence may hold
  int64_t kv_block_size = 16;   // slots per KV pool block
  int64_t num_layers = 0;       // > 0: keep only the first N layers (bisection)
  bool guard = false;           // canary bytes around every tensor, checked after every op
  std::optional<DType> kv_cache_dtype;  // default: the target's (KernelCatalog::CacheDType)
  int num_threads = 0;
  std::string device;             // "cpu" | "cuda"; empty: the artifact's target, else cpu
  bool plan_only = false;         // compile or decode for planning; the device is needed at NewSession
  // Checkpoints only: store the weights per this recipe (kNone: as the checkpoint stores them).
  QuantRecipe quant = QuantRecipe::kNone;
  // Artifacts only:
  int64_t required_context = 0;   // > 0: fail (or fall back) if compiled for less
  int64_t required_chunk = 0;     // > 0 (--chunk given): fail if compiled for another Tmax
  // num_layers > 0 on an artifact: fail unless it was compiled with that many layers.
  std::string source;             // checkpoint to fall back to (default: the one recorded)
  // Checkpoints only: a Gemma 4 MTP assistant's checkpoint directory (docs/speculative.md),
  // compiled into the Program as its "draft" step, reading the target's caches.
  std::string assistant;
  bool allow_fallback = true;
  bool verify_weights = false;    // also check the weights section's checksum
  std::function<void(const std::string&)> on_notice;  // default: print to stderr
};

// The backend for `device` ("cpu" | "cuda"). Usable as a catalog (compiling, planning) on any
// machine; a session on it needs the device. kDeviceUnavailable when this kiln was built without
// the CUDA backend, kInvalidArgument for an unknown device.
Result<std::unique_ptr<Backend>> MakeBackend(const std::string& device);

// The backend an artifact's program is decoded with: the one of its header's target kind.
// The header's errors (not an artifact, another format version, damage) are returned as such.
Result<std::unique_ptr<Backend>> MakeBackendForArtifact(const std::string& path);

class LoadedModel {
 public:
  // `path` is a checkpoint directory, a GGUF file (the first shard of a split one), a .kiln
  // artifact, or a config.json file (plan only). A GGUF without tensors (vocab-only) plans like
  // a bare config.json.
  static Result<std::unique_ptr<LoadedModel>> Load(const std::string& path, const LoadOptions& options);

  // A sequence with the model placed for it alone.
  Result<Session> NewSession(int num_threads = 0);
  // The model placed once for many sequences (Session::Attach, the scheduler).
  Result<std::unique_ptr<Runner>> NewRunner(RunnerOptions options = {});

  // The MTP assistant compiled in (LoadOptions::assistant): a line describing it, or empty.
  const std::string& assistant_summary() const { return assistant_summary_; }
  // The model family's view of the config (model_family.h).
  const ModelArchitecture& architecture() const { return *architecture_; }
  const Program& program() const { return program_; }
  bool has_weights() const { return checkpoint_.has_value() || artifact_ != nullptr; }
  const std::string& source() const { return source_; }
  // The artifact this model was loaded from, or nullptr (JIT).
  const Artifact* artifact() const { return artifact_.get(); }
  const Checkpoint* checkpoint() const { return checkpoint_ ? &*checkpoint_ : nullptr; }
  // The GGUF file the model was loaded from (its tensors are checkpoint()'s), or nullptr.
  const GgufSource* gguf() const { return gguf_.get(); }
  const Backend& backend() const { return *backend_; }
  // The device the program was compiled for and runs on: "cpu" or "cuda".
  const std::string& device() const { return device_; }
  // The bytes of every weight, in Program::weights order, in the dtype the Program stores it in:
  // the artifact's, the checkpoint's mapped tensors, or the buffers a recipe packed them into
  // (packed here on first use; an empty span for a weight whose packing failed: PackWeights).
  std::vector<std::span<const uint8_t>> WeightBytes() const;
  // Packs the weights a recipe stores in another dtype than the checkpoint's, once (thread-safe;
  // nothing to do for an artifact or without a recipe). kOutOfMemory when a buffer cannot be had.
  Status PackWeights() const;
  // The bytes of weight `index` as the source checkpoint stores them (in its source_dtype);
  // empty for an artifact or a bare config.
  std::span<const uint8_t> SourceWeightBytes(size_t index) const;
  // A text file of the source model ("config.json", "tokenizer.json", ...), if it has one.
  std::optional<std::string> SourceFile(const std::string& name) const;
  // The source's identity, recorded in a .kiln when it is compiled: a hash of its config.json and
  // of every weight the program reads, as the checkpoint stores it (whatever recipe packs it).
  // Empty for an artifact or a bare config.
  std::string SourceHash() const;

 private:
  static Result<std::unique_ptr<LoadedModel>> LoadCheckpoint(const std::string& path, const LoadOptions& options);
  static Result<std::unique_ptr<LoadedModel>> LoadArtifact(const std::string& path, const LoadOptions& options);
  Result<std::vector<WeightView>> WeightViews() const;

  std::string source_;
  std::string device_;
  std::string assistant_summary_;
  std::unique_ptr<ModelArchitecture> architecture_;
  std::optional<Checkpoint> checkpoint_;
  std::shared_ptr<const GgufSource> gguf_;
  std::unique_ptr<Artifact> artifact_;
  Program program_;
  std::unique_ptr<Backend> backend_;
  LoadOptions options_;
  // Packed weights (JIT with a recipe): one buffer per weight whose dtype differs from its
  // source's, empty otherwise; filled once by PackWeights.
  struct FreeDeleter {
    void operator()(uint8_t* bytes) const { std::free(bytes); }
  };
  mutable std::once_flag pack_once_;
  mutable Status pack_status_ = Status::Ok();
  mutable std::vector<std::unique_ptr<uint8_t, FreeDeleter>> packed_;
};

}  // namespace kiln
