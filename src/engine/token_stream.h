// The output side of generation, shared by the Generator (one sequence) and the Scheduler (many):
// records each sampled token, streams its text and decides whether generation goes on.
//
// Every token is checked against, in order: the stop ids (unless ignore_eos; the id is kept in
// the result's tokens and not detokenized), the stop strings (matched across token boundaries on
// the detokenized text; the text stops before the stop string) and max_new_tokens. The caller
// checks what depends on its sequence (a full context, cancellation). Finish() releases the
// held-back tail: a partial character, or text that might have begun a stop string.
#pragma once

#include <optional>

#include "engine/generator.h"
#include "engine/stop_strings.h"

namespace kiln {

class TokenStream {
 public:
  // `options` and `tokenizer` (may be null: no text) must outlive the stream; `result` receives
  // tokens, text and the stop reason.
  TokenStream(const GenerateOptions& options, const tokenizer::Tokenizer* tokenizer, GenerationResult& result);

  // Takes a sampled token: records and streams it. False when generation ends with it
  // (result.stop_reason set), true when the next step should run.
  bool Accept(GeneratedToken& token);
  // Streams what is held back (once, at the end).
  void Finish();

 private:
  void Emit(GeneratedToken& token, const std::string& text);

  const GenerateOptions& options_;
  GenerationResult& result_;
  std::optional<tokenizer::StreamingDecoder> decoder_;
  StopStringMatcher stops_;
};

}  // namespace kiln
