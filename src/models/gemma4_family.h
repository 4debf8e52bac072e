// Gemma 4 as a model family (model_family.h): its config (gemma4_config.h) and graph builder
// (gemma4_builder.h) behind the ModelArchitecture interface.
#pragma once

#include "models/gemma4_config.h"
#include "models/model_family.h"

namespace kiln {

ModelFamily Gemma4Family();

class Gemma4Architecture : public ModelArchitecture {
 public:
  explicit Gemma4Architecture(Gemma4Config config) : config_(std::move(config)) {}
  std::string family() const override { return "gemma4"; }
  std::string Summary() const override { return config_.Summary(); }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t num_layers() const override { return config_.num_layers; }
  DType weight_dtype() const override { return config_.weight_dtype; }
  Result<std::unique_ptr<ModelArchitecture>> KeepLayers(int64_t num_layers) const override;
  Result<Graph> BuildGraph() const override;
  std::vector<std::string> TensorPrefixes() const override;
  std::vector<std::string> LayerTable() const override;
  Result<DraftGraphs> BuildWithAssistant(const nlohmann::json& assistant_config) const override;
  const Gemma4Config& config() const { return config_; }

 private:
  Gemma4Config config_;
};

// The Gemma 4 config of an architecture of this family, or nullptr (tests and benchmarks that
// reach into Gemma's own fields).
const Gemma4Config* AsGemma4(const ModelArchitecture& architecture);

}  // namespace kiln
