#include "tokenizer_source.h"

#include "engine/model_loader.h"
#include "engine/model_text.h"
#include "io/format_sniff.h"

namespace kiln::cli {

Result<tokenizer::ModelTokenizer> LoadTokenizerOf(const std::string& model_path) {
  if (SniffPath(model_path).format != FileFormat::kKiln) return tokenizer::LoadModelTokenizer(model_path);
  LoadOptions options;
  options.plan_only = true;
  options.allow_fallback = false;  // the artifact's own files, not a checkpoint elsewhere
  TRY_ASSIGN(std::unique_ptr<LoadedModel> model, LoadedModel::Load(model_path, options));
  TRY_ASSIGN(ModelText text, LoadModelText(*model));
  if (!text.tokenizer) return Error(ErrorCode::kNotFound, model_path + " carries no tokenizer (its checkpoint had no tokenizer.json)");
  return std::move(*text.tokenizer);
}

}  // namespace kiln::cli
