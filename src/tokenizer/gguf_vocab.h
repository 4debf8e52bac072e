// Reads the tokenizer of a GGUF file (the tokenizer.ggml.* metadata keys) and builds a Tokenizer
// that reproduces llama.cpp's tokenization. The Gemma 4 vocabulary ships this way.
//
//   TRY_ASSIGN(GgufVocab vocab, ReadGgufVocab("ggml-vocab-gemma-4.gguf"));
//   TRY_ASSIGN(Tokenizer tok, TokenizerFromGguf(vocab));
//
// The file is read with the validating GGUF reader (io/gguf.h): it is memory-mapped and only
// the metadata and tensor-info pages are touched, never the tensor data, so this is cheap on
// multi-gigabyte model files. Every length and count is checked against the file size; a
// truncated or hostile file gives kMalformed, never a crash.
//
// Supported tokenizer.ggml.model values:
//   "gemma4": BPE over raw UTF-8 with "<0xXX>" byte fallback, spaces normalized to "▁", words
//             split by [^\n]+|[\n]+, a run of newlines that is a token kept whole (llama.cpp).
//   "gpt2":   byte-level BPE; the split regex follows tokenizer.ggml.pre ("llama-bpe" = Llama 3,
//             "qwen2" = Qwen 2/3, anything else = GPT-2).
// Other models (e.g. "llama" SentencePiece with scores) fail with kUnsupported.
// Tokens of type CONTROL (3) become special added tokens, USER_DEFINED (4) plain added tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

namespace kiln::tokenizer {

struct GgufVocab {
  std::string architecture;  // general.architecture
  std::string model;         // tokenizer.ggml.model
  std::string pre;           // tokenizer.ggml.pre
  std::vector<std::string> tokens;
  std::vector<int32_t> token_types;  // llama.cpp: 1 normal, 2 unknown, 3 control, 4 user, 5 unused, 6 byte
  MergeList merges;                  // split at the first space after the first byte (llama.cpp)
  std::optional<TokenId> bos_id, eos_id, eot_id, eom_id, unk_id, pad_id;
  std::optional<bool> add_bos, add_eos;
  std::string chat_template;  // tokenizer.chat_template ("" when absent)
};

// kNotFound / kIo for file problems, kMalformed for a bad GGUF, kNotFound when the file has no
// tokenizer.ggml.tokens.
Result<GgufVocab> ReadGgufVocab(const std::string& path);
// The same from an opened file (or an image of one, GgufFile::ParseImage); `name` goes into
// messages.
Result<GgufVocab> GgufVocabFrom(const GgufFile& file, const std::string& name);

// Consumes `vocab` (its token strings move into the tokenizer).
Result<Tokenizer> TokenizerFromGguf(GgufVocab vocab);

}  // namespace kiln::tokenizer
