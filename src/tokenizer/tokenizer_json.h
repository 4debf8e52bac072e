// Loads a Hugging Face tokenizer.json (tokenizers library format, "version": "1.0").
//
//   TRY_ASSIGN(Tokenizer tok, LoadTokenizerJsonFile(dir + "/tokenizer.json"));
//
// Supported: model BPE (byte_fallback, unk_token, fuse_unk, ignore_merges; merges as "a b"
// strings or [a, b] pairs; continuing_subword_prefix / end_of_word_suffix empty), the normalizers,
// pre-tokenizers and decoders listed in normalizer.h / pre_tokenizer.h / decoder.h, added_tokens
// (all flags), post_processor TemplateProcessing / ByteLevel / RobertaProcessing /
// BertProcessing / Sequence. Anything else fails with kUnsupported naming the construct
// ("tokenizer.json: pre_tokenizer type 'Digits' is not supported"); a file that is not valid
// JSON or has wrong types fails with kMalformed. Truncation and padding are ignored.
//
// Speed: the vocabulary and merges are scanned directly (json_scanner.h); the 33 MB Gemma 3
// file loads in a few hundred milliseconds. Untrusted input never crashes the loader.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace kiln::tokenizer {

Result<Tokenizer> LoadTokenizerJson(std::string_view json_text);
// kNotFound / kIo when the file cannot be read; errors are prefixed with the path.
Result<Tokenizer> LoadTokenizerJsonFile(const std::string& path);

// Reads a whole file (helper shared by the loaders). kNotFound when it does not exist.
Result<std::string> ReadFileToString(const std::string& path);

}  // namespace kiln::tokenizer
