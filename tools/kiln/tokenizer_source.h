// A model's tokenizer for the commands that need only the tokenizer (tokenize, detokenize,
// perplexity): a checkpoint directory, a tokenizer.json or a GGUF file are read directly
// (tokenizer::LoadModelTokenizer); a .kiln artifact, which carries its tokenizer files, through
// the model loader (for planning only: no device is needed).
#pragma once

#include <string>

#include "core/status.h"
#include "tokenizer/model_tokenizer.h"

namespace kiln::cli {

// kNotFound when the model has no tokenizer; the loaders' errors otherwise.
Result<tokenizer::ModelTokenizer> LoadTokenizerOf(const std::string& model_path);

}  // namespace kiln::cli
