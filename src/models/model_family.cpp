#include "models/model_family.h"

#include "io/json_file.h"
#include "models/gemma4_family.h"

namespace kiln {

const std::vector<ModelFamily>& ModelFamilies() {
  static const std::vector<ModelFamily> families = {Gemma4Family()};
  return families;
}

Result<std::unique_ptr<ModelArchitecture>> ParseArchitecture(const nlohmann::json& document) {
  if (!document.is_object()) return Error(ErrorCode::kMalformed, "config.json: top level is not a JSON object");
  for (const ModelFamily& family : ModelFamilies()) {
    if (family.recognizes(document)) return family.parse(document);
  }
  const auto type = document.find("model_type");
  if (type == document.end() || !type->is_string() || type->get<std::string>().empty()) {
    if (type != document.end() && !type->is_null() && !type->is_string()) return Error(ErrorCode::kMalformed, "config.json: 'model_type' must be a string");
    return Error(ErrorCode::kMalformed, "config.json: no 'model_type' (is this a Hugging Face config.json?)");
  }
  const std::string model_type = type->get<std::string>();
  if (model_type.empty()) return Error(ErrorCode::kMalformed, "config.json: no 'model_type' (is this a Hugging Face config.json?)");
  std::string known;
  for (const ModelFamily& family : ModelFamilies()) known += (known.empty() ? "" : ", ") + family.description;
  return Error(ErrorCode::kUnsupported, "config.json: model_type '" + model_type + "' is not supported; kiln supports " + known);
}

Result<std::unique_ptr<ModelArchitecture>> LoadArchitecture(const std::string& path) {
  TRY_ASSIGN(nlohmann::json document, ReadJsonFile(path));
  Result<std::unique_ptr<ModelArchitecture>> architecture = ParseArchitecture(document);
  if (!architecture) return architecture.error().WithContext(path);
  return architecture;
}

Result<ImportedModel> ImportGgufModel(const GgufModel& model) {
  TRY_ASSIGN(const std::string architecture, model.metadata().GetString("general.architecture"));
  std::string known;
  for (const ModelFamily& family : ModelFamilies()) {
    if (!family.import_gguf) continue;
    if (family.gguf_architecture == architecture) return family.import_gguf(model);
    known += (known.empty() ? "" : ", ") + family.gguf_architecture;
  }
  return Error(ErrorCode::kUnsupported, model.shards().front().name() + ": general.architecture '" + architecture +
                                            "' is not supported; kiln reads GGUF models of " + known);
}

Result<ImportedModel> ImportGgufAssistant(const GgufModel& model) {
  TRY_ASSIGN(const std::string architecture, model.metadata().GetString("general.architecture"));
  std::string known;
  for (const ModelFamily& family : ModelFamilies()) {
    if (!family.import_gguf_assistant) continue;
    if (family.gguf_assistant_architecture == architecture) return family.import_gguf_assistant(model);
    known += (known.empty() ? "" : ", ") + family.gguf_assistant_architecture;
  }
  return Error(ErrorCode::kUnsupported, model.shards().front().name() + ": general.architecture '" + architecture +
                                            "' is not an MTP drafter kiln reads (" + known + ")");
}

}  // namespace kiln
