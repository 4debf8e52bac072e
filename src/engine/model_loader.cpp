#include "engine/model_loader.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/format_sniff.h"
#include "io/json_file.h"
#include "compiler/weight_packing.h"
#include "core/hash.h"
#include "core/thread_pool.h"

#include "engine/gguf_source.h"
#include "engine/target_check.h"
#if KILN_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_device.h"
#endif

namespace kiln {

namespace {

// Looks a graph weight up under each of the family's tensor name prefixes.
WeightLookup CheckpointLookup(const Checkpoint& checkpoint, std::vector<std::string> prefixes) {
  return [&checkpoint, prefixes](const Value& expected) -> Result<WeightSpec> {
    for (const std::string& prefix : prefixes) {
      const TensorInfo* info = checkpoint.Find(prefix + expected.name);
      if (!info) continue;
      if (!info->dtype) {
        return Error(ErrorCode::kUnsupported, "tensor '" + info->name + "' has dtype " + info->dtype_name +
                                                  "; kiln reads BF16, F16 and F32 weights");
      }
      return WeightSpec{info->name, *info->dtype, info->shape};
    }
    std::string looked;
    for (size_t i = 0; i < prefixes.size(); ++i) {
      looked += (i == 0 ? "" : i + 1 == prefixes.size() ? " and " : ", ") + prefixes[i] + expected.name;
    }
    return Error(ErrorCode::kNotFound, "tensor '" + expected.name + "' is missing from the checkpoint in " +
                                           checkpoint.dir() + " (looked for " + looked + ")");
  };
}

// Without weights: every tensor is assumed to have the config's shape and dtype.
WeightLookup ConfigOnlyLookup(DType dtype) {
  return [dtype](const Value& expected) -> Result<WeightSpec> {
    WeightSpec spec{expected.name, expected.dtype == DType::kI32 ? DType::kI32 : dtype, {}};  // integer tables stay integer
    for (const Dim& d : expected.shape.dims) spec.shape.push_back(d.value);
    return spec;
  };
}

// An MTP assistant's config.json document and, when wanted, its tensors under the checkpoint's
// names: from a checkpoint directory (integer tensors narrowed to i32) or a GGUF drafter file.
struct AssistantSource {
  nlohmann::json config;
  std::optional<Checkpoint> weights;
};
Result<AssistantSource> OpenAssistant(const std::string& path, bool with_weights) {
  AssistantSource assistant;
  if (LooksLikeGguf(path)) {
    TRY_ASSIGN(std::shared_ptr<const GgufSource> source, GgufSource::OpenAssistant(path));
    assistant.config = source->config();
    if (with_weights) assistant.weights = source->MakeCheckpoint();
    return assistant;
  }
  TRY_ASSIGN(assistant.config, ReadJsonFile((std::filesystem::path(path) / "config.json").string()));
  if (with_weights) {
    TRY_ASSIGN(assistant.weights, Checkpoint::Open(path));
    TRY(assistant.weights->NarrowIntegerTensors());
  }
  return assistant;
}

// OK when a session could run on `device` here; the probe's words when the GPU is missing.
Status CheckDeviceUsable(const std::string& device) {
#if KILN_HAVE_CUDA
  if (device == "cuda") return cuda::ProbeCudaDevice(0).status();
#endif
  (void)device;
  return Status::Ok();
}

void PrintNotice(const std::string& text) { std::fprintf(stderr, "kiln: %s\n", text.c_str()); }

bool IsDevice(const std::string& kind) { return kind == "cpu" || kind == "cuda"; }

}  // namespace

Result<std::unique_ptr<Backend>> MakeBackend(const std::string& device) {
  if (device == "cpu") return std::unique_ptr<Backend>(std::make_unique<CpuBackend>());
  if (device == "cuda") {
#if KILN_HAVE_CUDA
    // No probe: the catalog plans without a GPU; CreateSession probes.
    return std::unique_ptr<Backend>(std::make_unique<CudaBackend>());
#else
    return Error(ErrorCode::kDeviceUnavailable, "this kiln was built without the CUDA backend (no nvcc at build time); use --device cpu");
#endif
  }
  return Error(ErrorCode::kInvalidArgument, "unknown device '" + device + "' (expected cpu or cuda)");
}

Result<std::unique_ptr<Backend>> MakeBackendForArtifact(const std::string& path) {
  TRY_ASSIGN(MappedFile mapped, MappedFile::Open(path));
  TRY_ASSIGN(ArtifactHeader header, Artifact::ReadHeader(mapped.bytes(), path));
  if (!IsDevice(header.target.kind)) return CheckTargetRunnable(header.target, path).error();
  return MakeBackend(header.target.kind);
}

Result<std::unique_ptr<LoadedModel>> LoadedModel::LoadArtifact(const std::string& path, const LoadOptions& options) {
  auto model = std::make_unique<LoadedModel>();
  model->source_ = path;
  model->options_ = options;
  // The header names the target, and with it the device; read before anything else is decoded.
  auto mapped = MappedFile::Open(path);
  std::optional<ArtifactHeader> header;
  if (mapped) {
    if (auto read = Artifact::ReadHeader(mapped->bytes(), path)) header = std::move(*read);
  }
  if (!options.assistant.empty()) {
    return Error(ErrorCode::kUnsupported, path + " is a compiled .kiln artifact, and an MTP assistant is compiled into one from its "
                                              "checkpoint: compile it in with kiln compile --draft, or run the checkpoint with --draft");
  }
  // An artifact's weights were packed when it was compiled; loading converts none.
  if (options.quant != QuantRecipe::kNone) {
    const QuantRecipe recorded = mapped ? Artifact::RecordedQuantRecipe(mapped->bytes()) : QuantRecipe::kNone;
    return Error(ErrorCode::kInvalidArgument,
                 std::string("--quant ") + QuantRecipeName(options.quant) + " applies to checkpoints, but " + path +
                     " is a compiled .kiln artifact (" +
                     (recorded == QuantRecipe::kNone ? std::string("weights as its checkpoint stores them")
                                                     : std::string("weights quantized with ") + QuantRecipeName(recorded)) +
                     "); drop --quant, or compile its checkpoint with `kiln compile SOURCE --quant " + QuantRecipeName(options.quant) + "`");
  }
  if (header && !options.device.empty() && options.device != header->target.kind) {
    return Error(ErrorCode::kInvalidArgument, path + " was compiled for " + header->target.ToString() + " and runs on " + header->target.kind +
                                                  ", but --device " + options.device + " was asked for; drop --device, or recompile with --target " +
                                                  options.device);
  }
  auto attempt = [&]() -> Status {
    if (!mapped) return mapped.error();
    if (!header) return Artifact::ReadHeader(mapped->bytes(), path).error();
    const TargetDescriptor& target = header->target;
    // Planning needs no device, but a target kind this kiln does not know has no catalog either.
    if (!options.plan_only || !IsDevice(target.kind)) TRY(CheckTargetRunnable(target, path));
    model->device_ = target.kind;
    TRY_ASSIGN(model->backend_, MakeBackend(target.kind));
    TRY_ASSIGN(model->artifact_, Artifact::Open(path, *model->backend_, options.verify_weights));
    const Program& program = model->artifact_->program();
    if (options.required_context > program.max_context) {
      return Error(ErrorCode::kPlanInvalid, path + " was compiled for a context of " + std::to_string(program.max_context) +
                                                " tokens, " + std::to_string(options.required_context) +
                                                " were asked for; recompile with --ctx " + std::to_string(options.required_context));
    }
    auto config_text = model->artifact_->File("config.json");
    TRY_ASSIGN(nlohmann::json document, ParseJson(*config_text, path + ": config.json section"));
    TRY_ASSIGN(model->architecture_, ParseArchitecture(document));
    // The program may be of a truncated model (--num-layers at compile time).
    if (const int64_t layers = model->artifact_->header().num_layers; layers > 0) {
      TRY_ASSIGN(model->architecture_, model->architecture_->KeepLayers(layers));
    }
    model->program_ = program;
    return Status::Ok();
  };
  Status status = attempt();
  if (status.ok()) {
    // Plans are fixed at compile time: flags asking for others are refused, not ignored.
    if (options.num_layers > 0 && options.num_layers != model->architecture_->num_layers()) {
      return Error(ErrorCode::kInvalidArgument, path + " was compiled with " + std::to_string(model->architecture_->num_layers()) +
                                                    " layers, but --num-layers " + std::to_string(options.num_layers) +
                                                    " was asked for; drop --num-layers, or recompile with it");
    }
    if (options.required_chunk > 0 && options.required_chunk != model->program_.max_tokens) {
      return Error(ErrorCode::kInvalidArgument, path + " was compiled with --chunk " + std::to_string(model->program_.max_tokens) +
                                                    ", but --chunk " + std::to_string(options.required_chunk) +
                                                    " was asked for; drop --chunk, or recompile with it");
    }
    return model;
  }
  // Fall back to the source checkpoint, when there is one.
  std::string source = options.source;
  if (source.empty() && mapped) source = Artifact::RecordedSourcePath(mapped->bytes());
  std::error_code ec;
  // A checkpoint directory, or the GGUF file it was compiled from.
  const bool have_source = !source.empty() && (std::filesystem::exists(std::filesystem::path(source) / "config.json", ec) || LooksLikeGguf(source));
  // The device does not change: compiling the source for a device that is not here cannot help.
  if (status.code() == ErrorCode::kDeviceUnavailable) {
    if (!have_source) return status.error();
    return Error(status.code(), status.error().message() + "; its source " + source +
                                    " is at hand: to run the model on the CPU, pass that checkpoint instead of the artifact");
  }
  if (!options.allow_fallback || !have_source) {
    if (!have_source && options.allow_fallback && status.code() != ErrorCode::kNotFound) {
      return Error(status.code(), status.error().message() + (source.empty() ? "" : "; its source " + source + " is not at hand") +
                                      "; to compile from the checkpoint instead, give it with --source DIR");
    }
    return status.error();
  }
  LoadOptions jit = options;
  jit.max_context = std::max(options.max_context, options.required_context);
  // The same weights as the file's: its recipe, read from the header whatever its version.
  jit.quant = mapped ? Artifact::RecordedQuantRecipe(mapped->bytes()) : QuantRecipe::kNone;
  if (jit.device.empty()) {
    const std::string recorded = header ? header->target.kind : mapped ? Artifact::RecordedTargetKind(mapped->bytes()) : "";
    jit.device = IsDevice(recorded) ? recorded : "cpu";
  }
  // The same program as the file's: its --num-layers, so that the source hash covers the same weights.
  const std::string recorded_hash = mapped ? Artifact::RecordedSourceHash(mapped->bytes()) : "";
  if (!recorded_hash.empty()) jit.num_layers = Artifact::RecordedNumLayers(mapped->bytes());
  const auto& notice = options.on_notice ? options.on_notice : PrintNotice;
  const std::string falling_back = status.error().message() + "; compiling from the source checkpoint " + source + " instead (JIT" +
                                   (jit.device == "cpu" ? "" : ", for " + jit.device) + ")";
  auto compiled = LoadCheckpoint(source, jit);
  if (!compiled.has_value()) {
    notice(falling_back);  // what was tried, before the reason it failed (e.g. no GPU for a CUDA source)
    return compiled.error();
  }
  std::unique_ptr<LoadedModel> fallback = std::move(*compiled);
  // A checkpoint changed since the compile is another model: never substituted silently.
  if (const std::string found = recorded_hash.empty() ? "" : fallback->SourceHash(); found != recorded_hash) {
    const std::string changed = "the checkpoint at " + source + " is not the one " + path + " was compiled from (source hash " +
                                recorded_hash + " recorded, " + found + " found)";
    if (options.source.empty()) {
      return Error(ErrorCode::kVersionMismatch, status.error().message() + "; " + changed + ": not falling back to a different model; "
                                                "recompile with `kiln compile " + source + " -o " + path +
                                                "`, or give the checkpoint with --source DIR to use it anyway");
    }
    notice(changed + "; using it because --source names it");
  }
  notice(falling_back);
  return fallback;
}

Result<std::unique_ptr<LoadedModel>> LoadedModel::Load(const std::string& path, const LoadOptions& options) {
  // Told by the first bytes, not the name (io/format_sniff.h).
  const SniffedPath sniffed = SniffPath(path);
  if (!IsModelInput(sniffed.format)) return ModelInputError(path, sniffed);
  if (sniffed.format == FileFormat::kKiln) return LoadArtifact(path, options);
  return LoadCheckpoint(path, options);
}

Result<std::unique_ptr<LoadedModel>> LoadedModel::LoadCheckpoint(const std::string& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  auto model = std::make_unique<LoadedModel>();
  model->source_ = path;
  model->options_ = options;
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  if (!is_dir && !fs::is_regular_file(path, ec)) {
    return Error(ErrorCode::kNotFound, "model path " + path + " does not exist (expected a checkpoint directory, a GGUF file or a config.json)");
  }
  const std::string config_path = is_dir ? (fs::path(path) / "config.json").string() : path;
  model->device_ = options.device.empty() ? "cpu" : options.device;
  TRY_ASSIGN(model->backend_, MakeBackend(model->device_));
  // Running needs the device; say it is missing before compiling for it.
  if (!options.plan_only) TRY(CheckDeviceUsable(model->device_));
  // A GGUF file stands in for the directory: its config comes from the metadata (gguf_source.h).
  if (!is_dir && LooksLikeGguf(path)) {
    TRY_ASSIGN(model->gguf_, GgufSource::Open(path));
    Result<std::unique_ptr<ModelArchitecture>> architecture = ParseArchitecture(model->gguf_->config());
    if (!architecture) return architecture.error().WithContext(path + " (the config its metadata implies)");
    model->architecture_ = std::move(architecture).value();
  } else {
    TRY_ASSIGN(model->architecture_, LoadArchitecture(config_path));
  }
  if (options.num_layers > 0) {
    TRY_ASSIGN(model->architecture_, model->architecture_->KeepLayers(options.num_layers));
  }
  if (is_dir) {
    TRY_ASSIGN(model->checkpoint_, Checkpoint::Open(path));
  }
  if (model->gguf_ && model->gguf_->has_tensors()) model->checkpoint_ = model->gguf_->MakeCheckpoint();

  // With an MTP assistant, the target's graph also outputs its final-normed hidden state and the
  // drafter's step reads the target's caches (docs/speculative.md).
  std::optional<ModelArchitecture::DraftGraphs> drafter;
  if (!options.assistant.empty()) {
    Result<AssistantSource> assistant = OpenAssistant(options.assistant, model->checkpoint_.has_value());
    if (!assistant) return assistant.error().WithContext("MTP assistant " + options.assistant);
    Result<ModelArchitecture::DraftGraphs> graphs = model->architecture_->BuildWithAssistant(assistant->config);
    if (!graphs) return graphs.error().WithContext("MTP assistant " + options.assistant);
    drafter = std::move(graphs).value();
    model->assistant_summary_ = drafter->summary;
    if (assistant->weights) TRY(model->checkpoint_->Merge(std::move(*assistant->weights), "mtp.", "model."));
  }
  TRY_ASSIGN(Graph graph, drafter ? Result<Graph>(std::move(drafter->target)) : model->architecture_->BuildGraph());
  if (options.max_sequences < 1 || options.max_sequences > options.max_tokens) {
    return Error(ErrorCode::kInvalidArgument, "--parallel " + std::to_string(options.max_sequences) + " must be in [1, " +
                                                  std::to_string(options.max_tokens) + "] (at most the chunk size, --chunk)");
  }
  // One graph, planned at three bounds: a decode step (one token for each of up to Smax
  // sequences), a mixed prefill step (up to Tmax tokens, the last row of each sequence) and a
  // scoring step (every row's logits).
  const int64_t smax = options.max_sequences;
  std::vector<StepSpec> steps;
  steps.push_back({"decode", graph, smax, smax});
  steps.push_back({"prefill", graph, options.max_tokens, smax});
  steps.push_back({"score", std::move(graph), options.max_tokens, options.max_tokens});
  // A draft step: one token for each of up to Smax speculating sequences.
  if (drafter) steps.push_back({"draft", std::move(drafter->draft), smax, smax});
  CompileOptions compile;
  compile.max_tokens = options.max_tokens;
  compile.max_sequences = smax;
  compile.kv_block_size = options.kv_block_size;
  compile.max_context = options.max_context;
  compile.guard = options.guard;
  compile.cache_dtype = options.kv_cache_dtype;
  compile.quant = options.quant;
  WeightLookup lookup = model->checkpoint_ && model->gguf_ ? model->gguf_->Lookup()
                       : model->checkpoint_ ? CheckpointLookup(*model->checkpoint_, model->architecture_->TensorPrefixes())
                                            : ConfigOnlyLookup(model->architecture_->weight_dtype());
  if (drafter && model->checkpoint_) {
    // The drafter's weights were merged in under their graph names.
    lookup = [target = std::move(lookup), mtp = CheckpointLookup(*model->checkpoint_, {""})](const Value& expected) {
      return expected.name.rfind("mtp.", 0) == 0 ? mtp(expected) : target(expected);
    };
  }
  TRY_ASSIGN(model->program_, CompileProgram(std::move(steps), *model->backend_, lookup, compile));
  return model;
}

std::span<const uint8_t> LoadedModel::SourceWeightBytes(size_t index) const {
  if (!checkpoint_) return {};
  // Every binding was resolved against this checkpoint at compile time.
  const TensorInfo* info = checkpoint_->Find(program_.weights[index].tensor_name);
  return {info->data, info->size_bytes};
}

Status LoadedModel::PackWeights() const {
  std::call_once(pack_once_, [this] {
    if (artifact_ || !checkpoint_) return;  // an artifact's weights are used as they are stored
    packed_.resize(program_.weights.size());
    std::unique_ptr<ThreadPool> pool;
    for (size_t i = 0; i < program_.weights.size(); ++i) {
      const WeightBinding& weight = program_.weights[i];
      if (weight.dtype == weight.source_dtype) continue;
      if (!pool) pool = std::make_unique<ThreadPool>(options_.num_threads);
      const int64_t bytes = PackedWeightBytes(weight);
      // 64-byte aligned, as the artifact's weights are.
      packed_[i].reset(static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>((bytes + 63) / 64 * 64))));
      if (!packed_[i]) {
        pack_status_ = Error(ErrorCode::kOutOfMemory, "cannot allocate " + std::to_string(bytes) + " bytes to pack weight '" + weight.name + "' as " +
                                                          DTypeName(weight.dtype));
        return;
      }
      pack_status_ = PackWeight(weight, SourceWeightBytes(i), {packed_[i].get(), static_cast<size_t>(bytes)}, pool.get());
      if (!pack_status_.ok()) {
        packed_[i].reset();
        return;
      }
    }
  });
  return pack_status_;
}

std::vector<std::span<const uint8_t>> LoadedModel::WeightBytes() const {
  (void)PackWeights();  // a failure leaves empty spans; WeightViews reports it
  std::vector<std::span<const uint8_t>> bytes;
  for (size_t i = 0; i < program_.weights.size(); ++i) {
    if (artifact_) {
      bytes.push_back(artifact_->weight(i));
    } else if (checkpoint_) {
      const WeightBinding& weight = program_.weights[i];
      if (weight.dtype == weight.source_dtype) {
        bytes.push_back(SourceWeightBytes(i));
      } else {
        const uint8_t* packed = i < packed_.size() ? packed_[i].get() : nullptr;
        bytes.emplace_back(packed, packed ? static_cast<size_t>(weight.size_bytes()) : 0);
      }
    }
  }
  return bytes;
}

std::string LoadedModel::SourceHash() const {
  if (!checkpoint_) return "";
  Hash64 hash;
  const std::string config = SourceFile("config.json").value_or("");
  hash.Update(config.data(), config.size());
  for (size_t i = 0; i < program_.weights.size(); ++i) {
    hash.Update(program_.weights[i].tensor_name.data(), program_.weights[i].tensor_name.size());
    const std::span<const uint8_t> source = SourceWeightBytes(i);
    hash.Update(source.data(), source.size());
  }
  return HashToHex(hash.Digest());
}

std::optional<std::string> LoadedModel::SourceFile(const std::string& name) const {
  if (artifact_) return artifact_->File(name);
  if (gguf_) return gguf_->File(name);
  if (!checkpoint_) return std::nullopt;
  auto text = ReadTextFile((std::filesystem::path(checkpoint_->dir()) / name).string());
  if (!text) return std::nullopt;
  return *text;
}

Result<std::vector<WeightView>> LoadedModel::WeightViews() const {
  if (!has_weights()) {
    return Error(ErrorCode::kInvalidArgument, source_ + " is a bare config (no weights): it can be planned and inspected, not run");
  }
  // Loaded for planning: whether this machine runs it was not asked yet.
  if (artifact_ && options_.plan_only) TRY(CheckTargetRunnable(artifact_->header().target, source_));
  TRY(PackWeights());
  std::vector<WeightView> views;
  const std::vector<std::span<const uint8_t>> bytes = WeightBytes();
  for (size_t i = 0; i < program_.weights.size(); ++i) {
    views.push_back({bytes[i].data(), program_.weights[i].dtype, static_cast<int64_t>(bytes[i].size())});
  }
  return views;
}

Result<Session> LoadedModel::NewSession(int num_threads) {
  TRY_ASSIGN(std::vector<WeightView> views, WeightViews());
  SessionOptions options;
  options.num_threads = num_threads > 0 ? num_threads : options_.num_threads;
  return Session::Create(program_, *backend_, std::move(views), options);
}

Result<std::unique_ptr<Runner>> LoadedModel::NewRunner(RunnerOptions options) {
  TRY_ASSIGN(std::vector<WeightView> views, WeightViews());
  if (options.num_threads <= 0) options.num_threads = options_.num_threads;
  return Runner::Create(program_, *backend_, std::move(views), options);
}

}  // namespace kiln
