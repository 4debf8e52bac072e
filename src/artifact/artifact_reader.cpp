#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "artifact/artifact_file.h"
#include "artifact/program_codec.h"
#include "core/hash.h"

namespace kiln {

namespace {

constexpr uint64_t kPrefixBytes = 32;
constexpr uint64_t kMaxHeaderBytes = 16 << 20;

Error Corrupt(const std::string& name, const std::string& what) {
  return Error(ErrorCode::kMalformed, name + ": " + what + "; the file is damaged: compile it again");
}

uint64_t ParseHex(const std::string& text, bool* ok) {
  uint64_t value = 0;
  *ok = text.size() == 16;
  for (char c : text) {
    value <<= 4;
    if (c >= '0' && c <= '9') value |= static_cast<uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f') value |= static_cast<uint64_t>(c - 'a' + 10);
    else *ok = false;
  }
  return value;
}

}  // namespace

std::string TargetDescriptor::ToString() const {
  if (kind == "cuda") return "cuda sm_" + std::to_string(cuda_sm);
  if (kind != "cpu") return kind + " " + arch;
  return "cpu " + arch + (cpu_isa == "any" ? " (any ISA)" : " (" + cpu_isa + ")");
}

const ArtifactSection* ArtifactHeader::Find(const std::string& name) const {
  for (const ArtifactSection& s : sections) if (s.name == name) return &s;
  return nullptr;
}

bool Artifact::LooksLikeArtifact(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  return in.read(magic, 8) && std::memcmp(magic, kArtifactMagic, 8) == 0;
}

namespace {

// The header as JSON, read on a best-effort basis (any format version, no checksum); discarded
// when it cannot be read.
nlohmann::json BestEffortHeader(std::span<const uint8_t> image) {
  if (image.size() < kPrefixBytes || std::memcmp(image.data(), kArtifactMagic, 8) != 0) return nlohmann::json::value_t::discarded;
  uint64_t header_bytes;
  std::memcpy(&header_bytes, image.data() + 16, 8);
  if (header_bytes > kMaxHeaderBytes || kPrefixBytes + header_bytes > image.size()) return nlohmann::json::value_t::discarded;
  const uint8_t* text = image.data() + kPrefixBytes;
  return nlohmann::json::parse(text, text + header_bytes, nullptr, /*allow_exceptions=*/false);
}

// json[object][field] when it is a string, else "".
std::string StringField(const nlohmann::json& json, const char* object, const char* field) {
  if (!json.is_object() || !json.contains(object) || !json[object].is_object()) return "";
  const nlohmann::json& value = json[object].value(field, nlohmann::json());
  return value.is_string() ? value.get<std::string>() : "";
}

bool IsWord(const std::string& text) {
  if (text.empty() || text.size() > 32) return false;
  for (char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// Descriptors no kiln writes. A well-formed kind this kiln does not know is left to the target
// check, which says so (a newer kiln may know it).
std::optional<std::string> MalformedTarget(const TargetDescriptor& target) {
  if (!IsWord(target.kind)) return "kind '" + target.kind + "'";
  if (!IsWord(target.arch)) return "arch '" + target.arch + "'";
  if (!IsWord(target.cpu_isa)) return "cpu_isa '" + target.cpu_isa + "'";
  if (target.kind == "cuda" && (target.cuda_sm < 10 || target.cuda_sm > 999)) return "cuda_sm " + std::to_string(target.cuda_sm);
  if (target.cuda_sm < 0 || target.cuda_min_driver < 0) return "negative CUDA fields";
  return std::nullopt;
}

}  // namespace

std::string Artifact::RecordedSourcePath(std::span<const uint8_t> image) {
  return StringField(BestEffortHeader(image), "source", "path");
}

std::string Artifact::RecordedSourceHash(std::span<const uint8_t> image) {
  return StringField(BestEffortHeader(image), "source", "hash");
}

int64_t Artifact::RecordedNumLayers(std::span<const uint8_t> image) {
  const nlohmann::json json = BestEffortHeader(image);
  if (!json.is_object() || !json.contains("num_layers") || !json["num_layers"].is_number_integer()) return 0;
  return std::max<int64_t>(0, json["num_layers"].get<int64_t>());
}

std::string Artifact::RecordedTargetKind(std::span<const uint8_t> image) {
  return StringField(BestEffortHeader(image), "target", "kind");
}

QuantRecipe Artifact::RecordedQuantRecipe(std::span<const uint8_t> image) {
  const nlohmann::json json = BestEffortHeader(image);
  if (!json.is_object() || !json.contains("quant") || !json["quant"].is_string()) return QuantRecipe::kNone;
  return QuantRecipeFromName(json["quant"].get<std::string>()).value_or(QuantRecipe::kNone);
}

Result<ArtifactHeader> Artifact::ReadHeader(std::span<const uint8_t> image, const std::string& name) {
  if (image.size() < kPrefixBytes || std::memcmp(image.data(), kArtifactMagic, 8) != 0) {
    std::string found;
    for (size_t i = 0; i < std::min<size_t>(8, image.size()); ++i) found += (image[i] >= 32 && image[i] < 127) ? static_cast<char>(image[i]) : '.';
    return Error(ErrorCode::kMalformed, name + " is not a kiln artifact (expected the magic bytes \"KILNAOT\", found \"" + found +
                                            "\"); pass a checkpoint directory, or compile one with `kiln compile`");
  }
  uint64_t fields[3];
  std::memcpy(fields, image.data() + 8, sizeof(fields));
  ArtifactHeader header;
  header.format_version = fields[0];
  if (header.format_version != kArtifactFormatVersion) {
    const bool newer = header.format_version > kArtifactFormatVersion;
    return Error(ErrorCode::kVersionMismatch,
                 name + " has artifact format version " + std::to_string(header.format_version) + ", this kiln reads version " +
                     std::to_string(kArtifactFormatVersion) + (newer ? "; upgrade kiln, or recompile the model with this kiln"
                                                                      : "; recompile the model with this kiln (`kiln compile`)"));
  }
  const uint64_t header_bytes = fields[1];
  if (header_bytes > kMaxHeaderBytes || kPrefixBytes + header_bytes > image.size()) {
    return Corrupt(name, "the header of " + std::to_string(header_bytes) + " bytes does not fit in the file of " +
                             std::to_string(image.size()) + " bytes (truncated?)");
  }
  const uint8_t* text = image.data() + kPrefixBytes;
  if (HashBytes(text, header_bytes) != fields[2]) return Corrupt(name, "the header checksum does not match");
  nlohmann::json json = nlohmann::json::parse(text, text + header_bytes, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return Corrupt(name, "the header is not a JSON object");
  try {
    header.producer = json.at("producer").get<std::string>();
    const auto& target = json.at("target");
    header.target.kind = target.at("kind").get<std::string>();
    header.target.arch = target.at("arch").get<std::string>();
    header.target.cpu_isa = target.at("cpu_isa").get<std::string>();
    header.target.cuda_sm = target.at("cuda_sm").get<int>();
    header.target.cuda_min_driver = target.at("cuda_min_driver").get<int>();
    header.source_path = json.at("source").at("path").get<std::string>();
    header.source_hash = json.at("source").at("hash").get<std::string>();
    header.model_summary = json.at("model").get<std::string>();
    header.num_layers = json.at("num_layers").get<int64_t>();
    const std::string quant = json.at("quant").get<std::string>();
    if (quant != QuantRecipeName(QuantRecipe::kNone)) {
      const std::optional<QuantRecipe> recipe = QuantRecipeFromName(quant);
      if (!recipe) return Corrupt(name, "the header names an unknown quantization recipe '" + quant + "'");
      header.quant_recipe = *recipe;
    }
    std::set<std::string> names;
    for (const auto& entry : json.at("sections")) {
      ArtifactSection section;
      section.name = entry.at("name").get<std::string>();
      section.offset = entry.at("offset").get<uint64_t>();
      section.size = entry.at("size").get<uint64_t>();
      bool hex_ok = false;
      section.checksum = ParseHex(entry.at("checksum").get<std::string>(), &hex_ok);
      if (!hex_ok) return Corrupt(name, "section '" + section.name + "' has a malformed checksum");
      if (!names.insert(section.name).second) return Corrupt(name, "section '" + section.name + "' appears twice");
      if (section.offset < kPrefixBytes + header_bytes || section.offset > image.size() || section.size > image.size() - section.offset) {
        return Corrupt(name, "section '" + section.name + "' [" + std::to_string(section.offset) + ", +" + std::to_string(section.size) +
                                 ") lies outside the file of " + std::to_string(image.size()) + " bytes (truncated?)");
      }
      header.sections.push_back(std::move(section));
    }
  } catch (const nlohmann::json::exception& e) {
    // nlohmann reports missing or mistyped fields by exception; they stop here.
    return Corrupt(name, std::string("the header lacks a field or has one of the wrong type (") + e.what() + ")");
  }
  if (auto what = MalformedTarget(header.target)) return Corrupt(name, "the target descriptor is malformed (" + *what + ")");
  for (const char* required : {"program", "weights", "config.json"}) {
    if (!header.Find(required)) return Corrupt(name, std::string("the '") + required + "' section is missing");
  }
  return header;
}

Result<std::unique_ptr<Artifact>> Artifact::OpenImage(std::span<const uint8_t> image, const std::string& name,
                                                      const KernelCatalog& catalog, bool verify_weights) {
  auto artifact = std::make_unique<Artifact>();
  artifact->image_ = image;
  artifact->name_ = name;
  TRY_ASSIGN(artifact->header_, ReadHeader(image, name));
  for (const ArtifactSection& section : artifact->header_.sections) {
    if (section.name == "weights" && !verify_weights) continue;
    if (HashBytes(image.data() + section.offset, section.size) != section.checksum) {
      return Corrupt(name, "section '" + section.name + "' fails its checksum");
    }
  }
  // The program's kernels and plans were chosen by the catalog of the target's backend.
  if (artifact->header_.target.kind != BackendKind(catalog)) {
    return Error(ErrorCode::kInvalidArgument, name + " was compiled for " + artifact->header_.target.ToString() + " and runs on the " +
                                                  artifact->header_.target.kind + " backend, not on " + BackendKind(catalog));
  }
  const ArtifactSection* program = artifact->header_.Find("program");
  auto decoded = DecodeProgram(image.subspan(program->offset, program->size), catalog);
  if (!decoded) return decoded.error().WithContext(name);
  artifact->program_ = std::move(decoded->program);
  artifact->weight_offsets_ = std::move(decoded->weight_offsets);
  if (artifact->program_.quant_recipe != artifact->header_.quant_recipe) {
    return Corrupt(name, std::string("the header's quantization recipe ") + QuantRecipeName(artifact->header_.quant_recipe) +
                             " differs from the program's " + QuantRecipeName(artifact->program_.quant_recipe));
  }
  const ArtifactSection* weights = artifact->header_.Find("weights");
  for (size_t i = 0; i < artifact->program_.weights.size(); ++i) {
    const uint64_t offset = artifact->weight_offsets_[i];
    const uint64_t size = static_cast<uint64_t>(artifact->program_.weights[i].size_bytes());
    if (offset > weights->size || size > weights->size - offset) {
      return Corrupt(name, "weight '" + artifact->program_.weights[i].tensor_name + "' lies outside the weights section");
    }
  }
  return artifact;
}

Result<std::unique_ptr<Artifact>> Artifact::Open(const std::string& path, const KernelCatalog& catalog, bool verify_weights) {
  TRY_ASSIGN(MappedFile mapped, MappedFile::Open(path));
  auto file = std::make_unique<MappedFile>(std::move(mapped));
  TRY_ASSIGN(std::unique_ptr<Artifact> artifact, OpenImage(file->bytes(), path, catalog, verify_weights));
  artifact->file_ = std::move(file);
  return artifact;
}

std::span<const uint8_t> Artifact::weight(size_t index) const {
  const ArtifactSection* weights = header_.Find("weights");
  return image_.subspan(weights->offset + weight_offsets_[index], static_cast<size_t>(program_.weights[index].size_bytes()));
}

std::optional<std::string> Artifact::File(const std::string& name) const {
  const ArtifactSection* section = header_.Find(name);
  if (!section || name == "program" || name == "weights") return std::nullopt;
  return std::string(reinterpret_cast<const char*>(image_.data() + section->offset), section->size);
}

Status Artifact::VerifyChecksums() const {
  for (const ArtifactSection& section : header_.sections) {
    if (HashBytes(image_.data() + section.offset, section.size) != section.checksum) {
      return Corrupt(name_, "section '" + section.name + "' fails its checksum");
    }
  }
  return VerifyProgram(program_, program_.arena_bytes);
}

}  // namespace kiln
