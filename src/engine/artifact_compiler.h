// `kiln compile`: the JIT pipeline's Program, serialized with its weights into a .kiln file.
#pragma once

#include <string>

#include "artifact/artifact_file.h"
#include "engine/gguf_source.h"
#include "engine/model_loader.h"

namespace kiln {

struct ArtifactCompileOptions {
  TargetDescriptor target; // its kind picks the backend whose catalog compiles (no device needed)
  LoadOptions load;        // bounds, --num-layers; a device, if set, must be the target's kind
  ProgressFn progress;     // weights written so far
};

// Compiles the checkpoint in `source_dir` (a directory, or a GGUF file: its first shard for a
// split one) and writes `out_path` (atomically).
Status CompileArtifact(const std::string& source_dir, const std::string& out_path, const ArtifactCompileOptions& options);

// The files of a checkpoint an artifact carries along (tokenizer, templates, configs).
// From a GGUF source: config.json (synthesized from its metadata) and kGgufTokenizerFile.
inline constexpr const char* kCarriedFiles[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                                 "special_tokens_map.json", "chat_template.jinja", kGgufTokenizerFile};

}  // namespace kiln
