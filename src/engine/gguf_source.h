// A GGUF model (one file or a split set) as a source for LoadedModel: what a checkpoint
// directory offers, made from the file. The loader then runs the same pipeline as for a
// Hugging Face checkpoint (docs/gguf.md).
//
//   TRY_ASSIGN(std::shared_ptr<const GgufSource> source, GgufSource::Open("gemma-4-e2b-f16.gguf"));
//   TRY_ASSIGN(auto architecture, ParseArchitecture(source->config()));
//   Checkpoint weights = source->MakeCheckpoint();       // HF names and shapes, GGUF bytes
//   WeightLookup lookup = source->Lookup();              // for CompileProgram
//
// The model family of general.architecture translates the metadata into a config.json and the
// tensor names into the family's (models/gemma4_gguf.h). Tensor bytes are used in place from the
// file's mapping; nothing is converted. ggml types map to kiln dtypes: F32, F16, BF16 and the
// block formats Q8_0, Q4_0, Q4_K, Q6_K (bit-exact layouts, core/dtype.h); a graph weight of any
// other type is refused with the tensor's GGUF name and type.
//
// Lifetime: a GgufSource is immutable and shared; the Checkpoint and the lookup it makes hold a
// reference, so the mapping lives as long as any of them.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "compiler/program.h"
#include "io/gguf_model.h"
#include "io/safetensors.h"
#include "models/model_family.h"

namespace kiln {

// A GGUF file of the source's tokenizer metadata alone (tokenizer.*, general.architecture), no
// tensors: what a .kiln compiled from a GGUF carries to rebuild the tokenizer
// (tokenizer::LoadModelTokenizerFromGguf).
inline constexpr char kGgufTokenizerFile[] = "tokenizer.gguf";

class GgufSource : public std::enable_shared_from_this<GgufSource> {
 public:
  // Opens and validates the file (and its split siblings) and imports it through its family.
  // Errors: GgufModel::Open's, ImportGgufModel's, each prefixed with nothing more (they name
  // the file already).
  static Result<std::shared_ptr<const GgufSource>> Open(const std::string& path);
  // The same for an MTP drafter's GGUF (ImportGgufAssistant): config() is the assistant's
  // config.json, MakeCheckpoint() its tensors under the checkpoint's names.
  static Result<std::shared_ptr<const GgufSource>> OpenAssistant(const std::string& path);

  const std::string& path() const { return path_; }
  const GgufModel& model() const { return model_; }
  // The config.json the metadata implies.
  const nlohmann::json& config() const { return imported_.config; }
  // False for a vocab-only file: it plans like a bare config.json and cannot run.
  bool has_tensors() const { return !model_.tensors().empty(); }
  // The tensors under the family's names and shapes; the bytes stay in the mapping.
  Checkpoint MakeCheckpoint() const;
  // The files a checkpoint directory would hold that this source can give: config.json
  // (synthesized), and kGgufTokenizerFile (when the file has a tokenizer). nullopt for every
  // other name; a run reads the tokenizer from the file itself (tokenizer::LoadModelTokenizer).
  std::optional<std::string> File(const std::string& name) const;
  // Resolves graph weights to tensors, checking type and shape with the GGUF names in messages.
  WeightLookup Lookup() const;

 private:
  GgufSource(std::string path, GgufModel model) : path_(std::move(path)), model_(std::move(model)) {}
  static Result<std::shared_ptr<const GgufSource>> OpenAs(const std::string& path, Result<ImportedModel> (*import)(const GgufModel&));

  std::string path_;
  GgufModel model_;
  ImportedModel imported_;  // its tensor pointers point into model_
  std::map<std::string, const ImportedModel::Tensor*, std::less<>> by_name_;
};

// Whether `path` is a regular file that begins with the GGUF magic bytes.
bool LooksLikeGguf(const std::string& path);

// The kiln dtype of a ggml tensor type, or nullopt for a type kiln cannot bind as a weight.
std::optional<DType> WeightDTypeFromGgml(GgmlType type);

}  // namespace kiln
