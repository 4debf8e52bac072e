// What a path holds, told by its bytes rather than its name: the one place kiln decides whether a
// model path is a checkpoint directory, a .kiln artifact, a GGUF file, a safetensors file or a
// JSON document, and what to say when it is none of those.
//
//   const SniffedPath sniffed = SniffPath(path);
//   if (sniffed.format == FileFormat::kGguf) ...
//   else if (!IsModelInput(sniffed.format)) return ModelInputError(path, sniffed);
//
// Only regular files are opened (with O_NONBLOCK, after stat): a FIFO or a device is reported as
// kSpecial and never read, so it cannot block.
#pragma once

#include <string>

#include "core/status.h"

namespace kiln {

enum class FileFormat {
  kMissing,      // nothing at the path
  kDirectory,    // a checkpoint directory (config.json, *.safetensors, tokenizer.json)
  kSpecial,      // a FIFO, device or socket
  kEmpty,        // a regular file of 0 bytes
  kKiln,         // "KILNAOT\0": a compiled artifact
  kGguf,         // "GGUF"
  kSafetensors,  // 8-byte little-endian header length, then '{'
  kJson,         // '{' or '[' after whitespace (a config.json)
  kUnknown,
};

struct SniffedPath {
  FileFormat format = FileFormat::kUnknown;
  std::string first_bytes;  // up to 8, printable ASCII or '.', for messages
};

// The magic bytes a .kiln starts with (artifact/artifact_file.h's kArtifactMagic; a test checks
// they agree).
inline constexpr char kKilnMagic[8] = {'K', 'I', 'L', 'N', 'A', 'O', 'T', '\0'};

SniffedPath SniffPath(const std::string& path);

// "a GGUF file", "a safetensors weights file", ...
const char* FileFormatName(FileFormat format);

// The formats LoadedModel::Load takes: a directory, a .kiln, a GGUF file or a bare config.json.
bool IsModelInput(FileFormat format);

// The error for a path that is not a model input: what it is and what kiln can do with it.
// kNotFound for kMissing, kUnsupported for a safetensors file, kInvalidArgument for a special
// file, kMalformed otherwise (a .kiln-named file without kiln's magic says it is damaged).
Error ModelInputError(const std::string& path, const SniffedPath& sniffed);

}  // namespace kiln
