#include "engine/token_stream.h"

#include <algorithm>

namespace kiln {

TokenStream::TokenStream(const GenerateOptions& options, const tokenizer::Tokenizer* tokenizer, GenerationResult& result)
    : options_(options), result_(result), stops_(options.stop_strings) {
  if (tokenizer) decoder_.emplace(*tokenizer, options.skip_special_tokens);
}

void TokenStream::Emit(GeneratedToken& token, const std::string& text) {
  token.text = text;
  result_.text += text;
  if (options_.on_token) options_.on_token(token);
}

bool TokenStream::Accept(GeneratedToken& token) {
  result_.tokens.push_back(token.id);
  const bool is_stop_id = std::find(options_.stop_token_ids.begin(), options_.stop_token_ids.end(), token.id) !=
                          options_.stop_token_ids.end();
  if (is_stop_id && !options_.ignore_eos) {
    Emit(token, "");
    result_.stop_reason = StopReason::kEos;
    return false;
  }
  Emit(token, decoder_ ? stops_.Push(decoder_->Push(token.id)) : std::string());
  if (stops_.stopped()) {
    result_.stop_reason = StopReason::kStopString;
    result_.stop_string = stops_.matched();
    return false;
  }
  if (static_cast<int64_t>(result_.tokens.size()) == options_.max_new_tokens) {
    result_.stop_reason = StopReason::kMaxTokens;
    return false;
  }
  return true;
}

void TokenStream::Finish() {
  if (!decoder_ || stops_.stopped()) return;
  std::string tail = stops_.Push(decoder_->Flush());
  tail += stops_.Flush();
  if (tail.empty()) return;
  result_.text += tail;
  GeneratedToken flush;
  flush.id = -1;  // no token: text only
  flush.index = static_cast<int64_t>(result_.tokens.size());
  flush.text = tail;
  if (options_.on_token) options_.on_token(flush);
}

}  // namespace kiln
