// .kiln artifacts: a compiled Program in one file that loads without planning or conversion.
//
// Layout (all integers little-endian):
//   [0, 8)    magic "KILNAOT\0"
//   [8, 16)   format version (kArtifactFormatVersion)
//   [16, 24)  header length N
//   [24, 32)  checksum of the header
//   [32, 32+N) header: JSON (producer, target descriptor, source path and hash, bounds, the
//             quantization recipe, and the section table: name, offset, size, checksum)
//   sections, each starting on a 4096-byte boundary: "program" (program_codec.h), the source's
//   text files ("config.json", "tokenizer.json", "tokenizer_config.json",
//   "generation_config.json", "chat_template.jinja" when present), and "weights" (each weight
//   64-byte aligned, exactly as the Program reads it: packed in its stored dtype when a
//   quantization recipe chose one), last.
//
// Writing goes through io/output_file.h: a temporary file renamed into place, removed by a
// SIGINT, SIGTERM or SIGHUP during the write (an interrupted compile leaves nothing behind). The output is deterministic.
// Reading validates everything before use and never trusts a byte: a bad magic, another format
// version, a truncated file, a failed checksum or an inconsistent program is a typed error whose
// message says what was expected, what was found and what to do. The weights section's checksum
// costs a pass over the weights, so Open() checks it only when asked (`kiln verify` does).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "compiler/kernel_catalog.h"
#include "compiler/program.h"
#include "core/mapped_file.h"

namespace kiln {

inline constexpr char kArtifactMagic[8] = {'K', 'I', 'L', 'N', 'A', 'O', 'T', '\0'};
inline constexpr uint64_t kArtifactFormatVersion = 4;  // 2: batched steps (Smax, KV blocks, R rows);
                                                       // 3: quantized weights (recipe, source dtypes);
                                                       // 4: the sparse centroid head (4 inputs)
inline constexpr const char* kProducerVersion = "kiln 0.1.0";

// What the compiled code needs from a machine.
struct TargetDescriptor {
  std::string kind = "cpu";       // "cpu" | "cuda"
  std::string arch = "x86_64";    // host architecture the CPU code was built for
  std::string cpu_isa = "any";    // "any" or a required kernel set: "avx2", "avx512", "avx512bf16"
  int cuda_sm = 0;                // e.g. 90 for sm_90
  int cuda_min_driver = 0;        // e.g. 13000
  std::string ToString() const;   // "cpu x86_64 (any ISA)", "cuda sm_90"
};

struct ArtifactSection {
  std::string name;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;
};

struct ArtifactHeader {
  uint64_t format_version = 0;
  std::string producer;
  TargetDescriptor target;
  std::string source_path;   // the checkpoint compiled from (for JIT fallback)
  std::string source_hash;   // hash of its config.json and weights
  std::string model_summary;
  int64_t num_layers = 0;    // > 0: compiled with --num-layers
  QuantRecipe quant_recipe = QuantRecipe::kNone;  // the program's, repeated for readers of the header alone
  std::vector<ArtifactSection> sections;
  const ArtifactSection* Find(const std::string& name) const;
};

struct ArtifactContents {
  const Program* program = nullptr;
  std::vector<std::span<const uint8_t>> weights;   // per Program::weights
  TargetDescriptor target;
  std::string source_path;
  std::string source_hash;
  std::string model_summary;
  int64_t num_layers = 0;
  std::map<std::string, std::string> files;       // section name -> bytes (config.json, ...)
};

// Called with (bytes written, total bytes) while weights are written.
using ProgressFn = std::function<void(uint64_t, uint64_t)>;

Status WriteArtifact(const std::string& path, const ArtifactContents& contents, const ProgressFn& progress = nullptr);

class Artifact {
 public:
  // Maps and validates `path`; `catalog` is the backend the program runs on, of the header's
  // target kind (kInvalidArgument otherwise: pick it from ReadHeader's target).
  static Result<std::unique_ptr<Artifact>> Open(const std::string& path, const KernelCatalog& catalog,
                                                bool verify_weights);
  // Validates an in-memory image (the fuzz target's entry); the image must outlive the result.
  static Result<std::unique_ptr<Artifact>> OpenImage(std::span<const uint8_t> image, const std::string& name,
                                                     const KernelCatalog& catalog, bool verify_weights);
  // Reads only the fixed prefix and header (for messages and JIT fallback when the rest is bad).
  static Result<ArtifactHeader> ReadHeader(std::span<const uint8_t> image, const std::string& name);
  // The source checkpoint path recorded in the header, read on a best-effort basis (any format
  // version, no checksum): only to offer a JIT fallback. Empty when it cannot be read.
  static std::string RecordedSourcePath(std::span<const uint8_t> image);
  // The source hash recorded with it (LoadedModel::SourceHash), read the same way: a fallback
  // checks that the checkpoint at the source path is still the one compiled. Empty when unknown.
  static std::string RecordedSourceHash(std::span<const uint8_t> image);
  // The --num-layers the file was compiled with (0: all), read the same way.
  static int64_t RecordedNumLayers(std::span<const uint8_t> image);
  // The target kind recorded in the header ("cpu", "cuda"), read the same way; empty when unknown.
  static std::string RecordedTargetKind(std::span<const uint8_t> image);
  // The quantization recipe recorded in the header, read the same way (so a fallback compiles the
  // source with the recipe the file was compiled with); kNone when absent or unknown.
  static QuantRecipe RecordedQuantRecipe(std::span<const uint8_t> image);
  // True when `path` starts with the artifact magic.
  static bool LooksLikeArtifact(const std::string& path);

  const ArtifactHeader& header() const { return header_; }
  const Program& program() const { return program_; }
  std::span<const uint8_t> weight(size_t index) const;
  std::optional<std::string> File(const std::string& name) const;
  // Checks every section checksum, the weights included.
  Status VerifyChecksums() const;
  uint64_t size_bytes() const { return image_.size(); }

 private:
  std::unique_ptr<MappedFile> file_;
  std::span<const uint8_t> image_;
  std::string name_;
  ArtifactHeader header_;
  Program program_;
  std::vector<uint64_t> weight_offsets_;
};

}  // namespace kiln
