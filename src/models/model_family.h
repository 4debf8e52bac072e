// The seam between the loader and a model family. A family recognises its config.json, parses it
// into a ModelArchitecture, and the architecture builds the Graph and says how the checkpoint
// names its tensors. The loader, the artifacts and the front ends see only this interface; adding
// a family (Gemma 3, Llama 3, Qwen 3) is a new builder registered in ModelFamilies(), not an edit
// of the loader.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/status.h"
#include "graph/graph.h"
#include "io/gguf_model.h"

namespace kiln {

class ModelArchitecture {
 public:
  virtual ~ModelArchitecture() = default;
  virtual std::string family() const = 0;   // "gemma4"
  virtual std::string Summary() const = 0;  // one line: type, layers, widths
  virtual int64_t vocab_size() const = 0;
  virtual int64_t num_layers() const = 0;
  // The weights' dtype as the config states it, for planning without the weights.
  virtual DType weight_dtype() const = 0;
  // The first `num_layers` layers (`--num-layers`, bisection); kInvalidArgument when impossible.
  virtual Result<std::unique_ptr<ModelArchitecture>> KeepLayers(int64_t num_layers) const = 0;
  // The step graph (DESIGN.md: one graph, planned at every step function's bounds).
  virtual Result<Graph> BuildGraph() const = 0;
  // Prefixes a checkpoint may put before a graph weight name, tried in order.
  virtual std::vector<std::string> TensorPrefixes() const = 0;
  // `kiln inspect`'s layer table: a header line, then one line per layer.
  virtual std::vector<std::string> LayerTable() const = 0;

  // With an MTP assistant (docs/speculative.md), given its config.json: this model's step graph
  // with the final-normed hidden state as a first output, the drafter's step graph (which reads
  // this model's caches), and a line describing the drafter. kUnsupported where the family has no
  // drafter; kInvalidArgument when the assistant does not fit this model.
  struct DraftGraphs {
    Graph target;
    Graph draft;
    std::string summary;
  };
  virtual Result<DraftGraphs> BuildWithAssistant(const nlohmann::json& /*assistant_config*/) const {
    return Error(ErrorCode::kUnsupported, family() + " models have no MTP drafter");
  }
};

// A model stored as GGUF, translated for the loader: the config.json its metadata implies and its
// tensors under the names the family's graph looks up (with the shapes a checkpoint would have).
struct ImportedModel {
  struct Tensor {
    std::string name;                    // "layers.0.self_attn.q_proj.weight"
    const GgufTensor* source = nullptr;  // "blk.0.attn_q.weight", owned by the GgufModel
    std::vector<int64_t> shape;          // checkpoint order ([out, in]): the GGUF shape reversed
  };
  nlohmann::json config;
  std::vector<Tensor> tensors;
  // The GGUF name a graph weight would have, for messages about a missing tensor.
  std::function<std::string(const std::string& name)> source_name;
};

struct ModelFamily {
  std::string name;         // "gemma4"
  std::string description;  // "Gemma 4 (gemma4, gemma4_unified, ...)", for refusals
  // Whether this family reads the config.json document (its model_type).
  std::function<bool(const nlohmann::json& document)> recognizes;
  std::function<Result<std::unique_ptr<ModelArchitecture>>(const nlohmann::json& document)> parse;
  // GGUF: the general.architecture this family reads ("" for none) and its importer.
  std::string gguf_architecture;
  std::function<Result<ImportedModel>(const GgufModel& model)> import_gguf;
  // GGUF files of the family's MTP drafters ("" for none): their architecture and importer,
  // which gives the drafter's config.json and its tensors under the checkpoint's names.
  std::string gguf_assistant_architecture;
  std::function<Result<ImportedModel>(const GgufModel& model)> import_gguf_assistant;
};

// Every family this kiln knows.
const std::vector<ModelFamily>& ModelFamilies();

// The architecture of a config.json document: the family that recognises it parses it.
// kMalformed for a document that is not a config; kUnsupported naming its model_type and the
// families kiln knows.
Result<std::unique_ptr<ModelArchitecture>> ParseArchitecture(const nlohmann::json& document);
// Reads and parses a config.json file (errors prefixed with the file name).
Result<std::unique_ptr<ModelArchitecture>> LoadArchitecture(const std::string& path);
// A GGUF model through the family of its general.architecture. kNotFound when the key is
// missing; kUnsupported naming an architecture no family reads; the importer's errors.
Result<ImportedModel> ImportGgufModel(const GgufModel& model);
// The same for a GGUF MTP drafter (a family's gguf_assistant_architecture).
Result<ImportedModel> ImportGgufAssistant(const GgufModel& model);

}  // namespace kiln
