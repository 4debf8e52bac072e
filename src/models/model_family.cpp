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

namespace {

using GgufImporter = std::function<Result<ImportedModel>(const GgufModel& model)>;

// Imports `model` through the family whose `architecture` member names its general.architecture;
// the refusal lists the architectures the families read, after `what`.
Result<ImportedModel> ImportThrough(const GgufModel& model, std::string ModelFamily::*architecture, GgufImporter ModelFamily::*importer,
                                    const std::string& what) {
  TRY_ASSIGN(const std::string name, model.metadata().GetString("general.architecture"));
  std::string known;
  for (const ModelFamily& family : ModelFamilies()) {
    if (!(family.*importer)) continue;
    if (family.*architecture == name) return (family.*importer)(model);
    known += (known.empty() ? "" : ", ") + family.*architecture;
  }
  return Error(ErrorCode::kUnsupported, model.shards().front().name() + ": general.architecture '" + name + "' " + what + known);
}

}  // namespace

Result<ImportedModel> ImportGgufModel(const GgufModel& model) {
  return ImportThrough(model, &ModelFamily::gguf_architecture, &ModelFamily::import_gguf, "is not supported; kiln reads GGUF models of ");
}

Result<ImportedModel> ImportGgufAssistant(const GgufModel& model) {
  return ImportThrough(model, &ModelFamily::gguf_assistant_architecture, &ModelFamily::import_gguf_assistant,
                       "is not an MTP drafter kiln reads: the drafters' architectures are ");
}

}  // namespace kiln
