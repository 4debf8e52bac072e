#include "engine/model_loader.h"

#include <filesystem>

#include "models/gemma4_builder.h"

namespace kiln {

namespace {

// Checkpoints name the decoder's tensors with one of these prefixes (docs/gemma4.md §9).
const char* const kPrefixes[] = {"model.language_model.", "model.", ""};

WeightLookup CheckpointLookup(const Checkpoint& checkpoint) {
  return [&checkpoint](const Value& expected) -> Result<WeightSpec> {
    for (const char* prefix : kPrefixes) {
      const TensorInfo* info = checkpoint.Find(prefix + expected.name);
      if (!info) continue;
      if (!info->dtype) {
        return Error(ErrorCode::kUnsupported, "tensor '" + info->name + "' has dtype " + info->dtype_name +
                                                  "; kiln reads BF16, F16 and F32 weights");
      }
      return WeightSpec{info->name, *info->dtype, info->shape};
    }
    return Error(ErrorCode::kNotFound, "tensor '" + expected.name + "' is missing from the checkpoint in " +
                                           checkpoint.dir() + " (looked for model.language_model." + expected.name +
                                           ", model." + expected.name + " and " + expected.name + ")");
  };
}

// Without weights: every tensor is assumed to have the config's shape and dtype.
WeightLookup ConfigOnlyLookup(DType dtype) {
  return [dtype](const Value& expected) -> Result<WeightSpec> {
    WeightSpec spec{expected.name, dtype, {}};
    for (const Dim& d : expected.shape.dims) spec.shape.push_back(d.value);
    return spec;
  };
}

}  // namespace

Result<std::unique_ptr<LoadedModel>> LoadedModel::Load(const std::string& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  auto model = std::make_unique<LoadedModel>();
  model->source_ = path;
  model->options_ = options;
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  if (!is_dir && !fs::is_regular_file(path, ec)) {
    return Error(ErrorCode::kNotFound, "model path " + path + " does not exist (expected a checkpoint directory or a config.json)");
  }
  const std::string config_path = is_dir ? (fs::path(path) / "config.json").string() : path;
  TRY_ASSIGN(model->config_, LoadGemma4Config(config_path));
  if (options.num_layers > 0) {
    TRY_ASSIGN(model->config_, TruncateLayers(model->config_, options.num_layers));
  }
  if (is_dir) {
    TRY_ASSIGN(model->checkpoint_, Checkpoint::Open(path));
  }

  TRY_ASSIGN(Graph last, BuildGemma4Graph(model->config_, LogitsMode::kLastPosition));
  TRY_ASSIGN(Graph all, BuildGemma4Graph(model->config_, LogitsMode::kAllPositions));
  std::vector<StepSpec> steps;
  steps.push_back({"decode", last, 1});
  steps.push_back({"prefill", std::move(last), options.max_tokens});
  steps.push_back({"score", std::move(all), options.max_tokens});
  CompileOptions compile;
  compile.max_tokens = options.max_tokens;
  compile.max_context = options.max_context;
  compile.guard = options.guard;
  const WeightLookup lookup = model->checkpoint_ ? CheckpointLookup(*model->checkpoint_)
                                                 : ConfigOnlyLookup(model->config_.weight_dtype);
  TRY_ASSIGN(model->program_, CompileProgram(std::move(steps), model->backend_, lookup, compile));
  return model;
}

Result<Session> LoadedModel::NewSession(int num_threads) {
  if (!checkpoint_) {
    return Error(ErrorCode::kInvalidArgument, source_ + " is a bare config (no weights): it can be planned and inspected, not run");
  }
  std::vector<WeightView> views;
  for (const WeightBinding& binding : program_.weights) {
    const TensorInfo* info = checkpoint_->Find(binding.tensor_name);
    if (!info) return Error(ErrorCode::kInternal, "bound tensor '" + binding.tensor_name + "' vanished");
    views.push_back({info->data, binding.dtype, static_cast<int64_t>(info->size_bytes)});
  }
  SessionOptions options;
  options.num_threads = num_threads > 0 ? num_threads : options_.num_threads;
  options.vocab_size = config_.vocab_size;
  return Session::Create(program_, backend_, std::move(views), options);
}

}  // namespace kiln
