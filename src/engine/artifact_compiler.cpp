#include "engine/artifact_compiler.h"

#include <filesystem>

#include "core/hash.h"

namespace kiln {

Status CompileArtifact(const std::string& source_dir, const std::string& out_path, const ArtifactCompileOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(source_dir, ec) && !LooksLikeGguf(source_dir)) {
    return Error(ErrorCode::kInvalidArgument,
                 "kiln compile needs a checkpoint directory (config.json + *.safetensors) or a GGUF file, got " + source_dir);
  }
  if (!options.load.device.empty() && options.load.device != options.target.kind) {
    return Error(ErrorCode::kInvalidArgument, "--device " + options.load.device + " disagrees with --target " + options.target.ToString() +
                                                  "; the target picks the backend: drop --device");
  }
  // The same pipeline as JIT, with the target's catalog; compiling runs nothing, so it needs no device.
  LoadOptions load = options.load;
  load.device = options.target.kind;
  load.plan_only = true;
  TRY_ASSIGN(std::unique_ptr<LoadedModel> model, LoadedModel::Load(source_dir, load));
  const Program& program = model->program();

  // The weights a recipe stores in block formats, packed exactly as JIT packs them.
  TRY(model->PackWeights());
  ArtifactContents contents;
  contents.program = &program;
  contents.weights = model->WeightBytes();
  contents.target = options.target;
  contents.source_path = fs::absolute(source_dir).lexically_normal().string();
  contents.model_summary = model->architecture().Summary();
  contents.num_layers = options.load.num_layers;
  for (const char* name : kCarriedFiles) {
    if (auto text = model->SourceFile(name)) contents.files[name] = std::move(*text);
  }
  contents.source_hash = model->SourceHash();
  return WriteArtifact(out_path, contents, options.progress);
}

}  // namespace kiln
