#include "engine/gguf_source.h"

#include <cstring>
#include <fstream>

#include "io/gguf_writer.h"

namespace kiln {

namespace {

std::string DimsString(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

std::string GgmlShapeString(const std::vector<int64_t>& checkpoint_shape) {
  std::string text = "{";
  for (size_t i = checkpoint_shape.size(); i-- > 0;) text += std::to_string(checkpoint_shape[i]) + (i ? ", " : "");
  return text + "}";
}

}  // namespace

std::optional<DType> WeightDTypeFromGgml(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return DType::kF32;
    case GgmlType::kF16: return DType::kF16;
    case GgmlType::kBF16: return DType::kBF16;
    case GgmlType::kQ8_0: return DType::kQ8_0;
    case GgmlType::kQ4_0: return DType::kQ4_0;
    case GgmlType::kQ4_K: return DType::kQ4_K;
    case GgmlType::kQ6_K: return DType::kQ6_K;
    case GgmlType::kQ4_1: return DType::kQ4_1;
    case GgmlType::kQ5_0: return DType::kQ5_0;
    case GgmlType::kQ5_1: return DType::kQ5_1;
    case GgmlType::kQ5_K: return DType::kQ5_K;
    case GgmlType::kI32: return DType::kI32;  // a drafter's token ordering; refused as any other weight
    default: return std::nullopt;
  }
}

bool LooksLikeGguf(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  char magic[4] = {};
  return file.read(magic, sizeof(magic)) && std::memcmp(magic, "GGUF", sizeof(magic)) == 0;
}

Result<std::shared_ptr<const GgufSource>> GgufSource::Open(const std::string& path) { return OpenAs(path, ImportGgufModel); }

Result<std::shared_ptr<const GgufSource>> GgufSource::OpenAssistant(const std::string& path) { return OpenAs(path, ImportGgufAssistant); }

Result<std::shared_ptr<const GgufSource>> GgufSource::OpenAs(const std::string& path, Result<ImportedModel> (*import)(const GgufModel&)) {
  TRY_ASSIGN(GgufModel model, GgufModel::Open(path));
  // Constructed first so that the imported tensor pointers point into its own model_.
  std::shared_ptr<GgufSource> source(new GgufSource(path, std::move(model)));
  TRY_ASSIGN(source->imported_, import(source->model_));
  for (const ImportedModel::Tensor& tensor : source->imported_.tensors) {
    if (!source->by_name_.emplace(tensor.name, &tensor).second) {
      return Error(ErrorCode::kMalformed, path + ": two tensors map to '" + tensor.name + "'");
    }
  }
  return std::shared_ptr<const GgufSource>(std::move(source));
}

Checkpoint GgufSource::MakeCheckpoint() const {
  std::map<std::string, TensorInfo> tensors;
  for (const ImportedModel::Tensor& tensor : imported_.tensors) {
    const GgufTensor& source = *tensor.source;
    TensorInfo info;
    info.name = tensor.name;
    info.dtype_name = GgmlTypeName(static_cast<uint32_t>(source.type));
    info.dtype = WeightDTypeFromGgml(source.type);
    info.shape = tensor.shape;
    info.data = source.data;
    info.size_bytes = static_cast<size_t>(source.size_bytes);
    info.file = model_.shards()[source.shard].name();
    tensors.emplace(tensor.name, std::move(info));
  }
  return Checkpoint::FromTensors(path_, std::move(tensors), shared_from_this());
}

std::optional<std::string> GgufSource::File(const std::string& name) const {
  if (name == "config.json") return imported_.config.dump(2);
  if (name != kGgufTokenizerFile || !model_.metadata().Has("tokenizer.ggml.tokens")) return std::nullopt;
  GgufWriter writer;
  for (const GgufMetadata::Entry& entry : model_.metadata().entries()) {
    if (entry.key == "general.architecture" || entry.key.rfind("tokenizer.", 0) == 0) writer.Add(entry.key, GgufWriterValue::From(entry.value));
  }
  Result<std::vector<uint8_t>> image = writer.Encode();
  if (!image) return std::nullopt;  // values read from a valid file always encode
  return std::string(image->begin(), image->end());
}

WeightLookup GgufSource::Lookup() const {
  std::shared_ptr<const GgufSource> self = shared_from_this();
  return [self](const Value& expected) -> Result<WeightSpec> {
    std::vector<int64_t> expected_shape;
    for (const Dim& d : expected.shape.dims) expected_shape.push_back(d.value);
    auto found = self->by_name_.find(expected.name);
    if (found == self->by_name_.end()) {
      const std::string gguf_name = self->imported_.source_name ? self->imported_.source_name(expected.name) : expected.name;
      return Error(ErrorCode::kNotFound, self->path_ + ": no tensor '" + gguf_name + "' (ggml shape " +
                                             GgmlShapeString(expected_shape) + "), which the metadata implies for '" +
                                             expected.name + "'");
    }
    const ImportedModel::Tensor& tensor = *found->second;
    const GgufTensor& source = *tensor.source;
    const std::optional<DType> dtype = WeightDTypeFromGgml(source.type);
    if (!dtype) {
      return Error(ErrorCode::kUnsupported, self->path_ + ": tensor '" + source.name + "' is of ggml type " +
                                                GgmlTypeName(static_cast<uint32_t>(source.type)) +
                                                "; kiln reads GGUF weights of type f32, f16, bf16, q8_0, q4_0, q4_K and q6_K");
    }
    if (tensor.shape != expected_shape) {
      return Error(ErrorCode::kMalformed, self->path_ + ": tensor '" + source.name + "' has ggml shape " + GgmlShapeString(tensor.shape) +
                                              " (" + DimsString(tensor.shape) + " as '" + expected.name + "'), but the metadata implies " +
                                              GgmlShapeString(expected_shape));
    }
    return WeightSpec{tensor.name, *dtype, tensor.shape};
  };
}

}  // namespace kiln
