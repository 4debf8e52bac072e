// Everything text-related about a model, loaded from its files: the tokenizer, the chat template,
// the special token strings and the stop tokens.
//
//   TRY_ASSIGN(ModelTokenizer m, LoadModelTokenizer("/models/gemma-4-e2b-it"));   // HF directory
//   TRY_ASSIGN(ModelTokenizer g, LoadModelTokenizer("/models/gemma-4.gguf"));      // GGUF file
//   std::vector<TokenId> prompt = m.tokenizer.Encode(text, {.add_special_tokens = m.add_bos_token});
//
// A directory must hold tokenizer.json; it may hold tokenizer_config.json (bos/eos strings,
// add_bos_token, chat_template), chat_template.jinja (preferred over tokenizer_config's
// template, as in transformers), config.json and generation_config.json.
//
// Stop tokens (what generation stops on), in order, without duplicates:
//   generation_config.json eos_token_id (int or list), config.json eos_token_id (also inside
//   "text_config"), tokenizer_config.json eos_token; for GGUF the eos/eot/eom ids plus the
//   end-of-turn tokens llama.cpp also treats as end of generation (<end_of_turn>, <turn|>,
//   <|tool_response>, <|eot_id|>, <|eom_id|>, <|im_end|>) when present. For Gemma 4 this gives
//   [1, 106, 50] as its generation_config does.
// A missing optional file is not an error; a malformed one is (kMalformed naming it).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace kiln::tokenizer {

struct ModelTokenizer {
  Tokenizer tokenizer;
  std::optional<ChatTemplate> chat_template;  // absent when the model ships none
  std::string bos_token, eos_token;           // strings given to the template ("" if unknown)
  bool add_bos_token = false;  // whether a plain (non-chat) prompt gets the post-processor tokens
  std::vector<TokenId> stop_token_ids;
  std::string source;  // the path it came from
};

Result<ModelTokenizer> LoadModelTokenizer(const std::string& path);
// From the bytes of a GGUF file holding a tokenizer's metadata (tokenizer.ggml.*, the chat
// template): what a .kiln compiled from a GGUF carries. `name` goes into messages and `source`.
Result<ModelTokenizer> LoadModelTokenizerFromGguf(std::span<const uint8_t> image, const std::string& name);

}  // namespace kiln::tokenizer
