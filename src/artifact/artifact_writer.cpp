#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "artifact/artifact_file.h"
#include "artifact/program_codec.h"
#include "core/hash.h"
#include "io/output_file.h"

namespace kiln {

namespace {

constexpr uint64_t kSectionAlignment = 4096;
constexpr uint64_t kWeightAlignment = 64;
constexpr uint64_t kPrefixBytes = 32;

uint64_t AlignUp(uint64_t value, uint64_t alignment) { return (value + alignment - 1) / alignment * alignment; }

nlohmann::ordered_json HeaderJson(const ArtifactContents& contents, const std::vector<ArtifactSection>& sections) {
  nlohmann::ordered_json header;
  header["producer"] = kProducerVersion;
  header["target"] = {{"kind", contents.target.kind}, {"arch", contents.target.arch}, {"cpu_isa", contents.target.cpu_isa},
                      {"cuda_sm", contents.target.cuda_sm}, {"cuda_min_driver", contents.target.cuda_min_driver}};
  header["source"] = {{"path", contents.source_path}, {"hash", contents.source_hash}};
  header["model"] = contents.model_summary;
  header["num_layers"] = contents.num_layers;
  header["quant"] = QuantRecipeName(contents.program->quant_recipe);
  header["max_tokens"] = contents.program->max_tokens;
  header["max_context"] = contents.program->max_context;
  nlohmann::ordered_json table = nlohmann::ordered_json::array();
  for (const ArtifactSection& s : sections) {
    // Checksums as fixed-width hex so the header length does not depend on their values.
    table.push_back({{"name", s.name}, {"offset", s.offset}, {"size", s.size}, {"checksum", HashToHex(s.checksum)}});
  }
  header["sections"] = table;
  return header;
}

}  // namespace

Status WriteArtifact(const std::string& path, const ArtifactContents& contents, const ProgressFn& progress) {
  const Program& program = *contents.program;
  if (contents.weights.size() != program.weights.size()) return Error(ErrorCode::kInternal, "weights do not match the program");
  // Weights layout inside their section.
  std::vector<uint64_t> weight_offsets;
  uint64_t weights_size = 0;
  for (size_t i = 0; i < contents.weights.size(); ++i) {
    if (static_cast<int64_t>(contents.weights[i].size()) != program.weights[i].size_bytes()) {
      return Error(ErrorCode::kInternal, "weight '" + program.weights[i].tensor_name + "' has the wrong size");
    }
    weights_size = AlignUp(weights_size, kWeightAlignment);
    weight_offsets.push_back(weights_size);
    weights_size += contents.weights[i].size();
  }
  const std::vector<uint8_t> program_bytes = EncodeProgram(program, weight_offsets);

  // Section table: program, files (sorted by name), weights last. Offsets after the header,
  // whose length is known once the table is (checksums are fixed-width).
  std::vector<ArtifactSection> sections;
  std::vector<std::span<const uint8_t>> payloads;
  sections.push_back({"program", 0, program_bytes.size(), HashBytes(program_bytes.data(), program_bytes.size())});
  payloads.emplace_back(program_bytes);
  for (const auto& [name, text] : contents.files) {
    sections.push_back({name, 0, text.size(), HashBytes(text.data(), text.size())});
    payloads.emplace_back(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }
  sections.push_back({"weights", 0, weights_size, 0});
  // Placeholder offsets have the final width only after a first layout pass; iterate to a fixpoint.
  uint64_t header_size = 0;
  for (int pass = 0; pass < 4; ++pass) {
    uint64_t offset = AlignUp(kPrefixBytes + header_size, kSectionAlignment);
    for (ArtifactSection& s : sections) {
      s.offset = offset;
      offset = AlignUp(offset + s.size, kSectionAlignment);
    }
    const uint64_t size = HeaderJson(contents, sections).dump().size();
    if (size == header_size) break;
    header_size = size;
  }

  // Sections are written out of order (the header last: a file with a valid header is
  // complete), so the output must be a regular file.
  TRY_ASSIGN(OutputFile out, OutputFile::Create(path));
  if (!out.seekable()) {
    return Error(ErrorCode::kInvalidArgument, path + " is not a regular file; a .kiln is written out of order and needs one");
  }
  for (size_t i = 0; i + 1 < sections.size(); ++i) TRY(out.WriteAt(sections[i].offset, payloads[i].data(), payloads[i].size()));
  // Weights, hashed as they stream out.
  Hash64 weights_hash;
  const uint64_t weights_base = sections.back().offset;
  static const uint8_t kZeros[kWeightAlignment] = {};
  uint64_t written = 0;
  for (size_t i = 0; i < contents.weights.size(); ++i) {
    const uint64_t padding = weight_offsets[i] - written;
    weights_hash.Update(kZeros, padding);
    weights_hash.Update(contents.weights[i].data(), contents.weights[i].size());
    TRY(out.WriteAt(weights_base + weight_offsets[i], contents.weights[i].data(), contents.weights[i].size()));
    written = weight_offsets[i] + contents.weights[i].size();
    if (progress) progress(written, weights_size);
  }
  sections.back().checksum = weights_hash.Digest();
  const std::string header = HeaderJson(contents, sections).dump();
  uint8_t prefix[kPrefixBytes];
  std::memcpy(prefix, kArtifactMagic, 8);
  const uint64_t fields[3] = {kArtifactFormatVersion, header.size(), HashBytes(header.data(), header.size())};
  std::memcpy(prefix + 8, fields, sizeof(fields));
  TRY(out.WriteAt(0, prefix, sizeof(prefix)));
  TRY(out.WriteAt(kPrefixBytes, header.data(), header.size()));
  // The file ends exactly where the weights section does (also when it is empty).
  TRY(out.Truncate(weights_base + weights_size));
  TRY(out.Commit());
  return Status::Ok();
}

}  // namespace kiln
