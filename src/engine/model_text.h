// A loaded model's text side: tokenizer, chat template, stop tokens and sampling defaults, read
// from the model's own files (LoadedModel::SourceFile) whether it came from a checkpoint
// directory or a .kiln artifact (which carries the files as sections). Nothing touches disk
// beyond what SourceFile reads.
//
//   TRY_ASSIGN(ModelText text, LoadModelText(*model));
//   TRY_ASSIGN(const tokenizer::ModelTokenizer* tok, text.RequireTokenizer());
//   TRY_ASSIGN(std::vector<int32_t> prompt, EncodeChat(*tok, messages));
//
// Files read (all optional; a malformed one is kMalformed naming it):
//   tokenizer.json                  the tokenizer (absent: token-id prompts only)
//   tokenizer_config.json           bos/eos strings, add_bos_token, chat_template
//   chat_template.jinja             the template (preferred over tokenizer_config's)
//   generation_config.json          eos_token_id; do_sample, temperature, top_k, top_p, min_p,
//                                   repetition_penalty as sampling defaults
//   config.json                     eos_token_id (also under text_config)
// Stop tokens, in order without duplicates: generation_config, config, tokenizer_config's
// eos_token - the same rule as tokenizer::LoadModelTokenizer, which reads a directory.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "engine/model_loader.h"
#include "engine/sampler.h"
#include "tokenizer/model_tokenizer.h"

namespace kiln {

struct ModelText {
  std::optional<tokenizer::ModelTokenizer> tokenizer;  // absent without tokenizer.json
  std::vector<int32_t> stop_token_ids;
  // generation_config.json's sampling (greedy unless it sets do_sample: true).
  SamplingOptions default_sampling;
  std::string model_name;  // for messages

  // The tokenizer, or kNotFound: "<model> has no tokenizer.json: give the prompt as token ids
  // with --prompt-tokens ID,ID,... and print ids with --output-tokens".
  Result<const tokenizer::ModelTokenizer*> RequireTokenizer() const;
};

// `read_file(name)` returns a file's text or nullopt when the model has none.
using ModelFileReader = std::function<std::optional<std::string>(const std::string& name)>;
Result<ModelText> LoadModelText(const ModelFileReader& read_file, const std::string& model_name);
Result<ModelText> LoadModelText(const LoadedModel& model);

// A conversation ([{"role": "system"|"user"|"assistant", "content": ...}]) rendered with the
// model's chat template (generation prompt added) and encoded without adding special tokens:
// the template writes <bos> itself, as transformers' apply_chat_template(tokenize=True) does.
// kNotFound when the model has no chat template.
Result<std::vector<int32_t>> EncodeChat(const tokenizer::ModelTokenizer& tokenizer,
                                        const nlohmann::ordered_json& messages);
// Plain text, with the post-processor's tokens (<bos>) when the model adds them.
std::vector<int32_t> EncodePlain(const tokenizer::ModelTokenizer& tokenizer, const std::string& text);

}  // namespace kiln
