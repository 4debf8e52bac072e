// Tokenizer: text <-> token ids with the exact behaviour of the model's own Hugging Face
// tokenizer (tokenizer.json) or of llama.cpp for a GGUF vocabulary.
//
//   TRY_ASSIGN(Tokenizer tok, LoadTokenizerJsonFile("gemma/tokenizer.json"));  // tokenizer_json.h
//   std::vector<TokenId> ids = tok.Encode("Hello world", {.add_special_tokens = true});
//   std::string text = tok.Decode(ids, /*skip_special_tokens=*/true);
//
//   StreamingDecoder stream(tok);             // decode while generating
//   for (TokenId id : generated) std::cout << stream.Push(id);   // never a broken UTF-8 char
//   std::cout << stream.Flush();
//
// Encoding pipeline (HF tokenizers): repair invalid UTF-8 (each ill-formed subsequence becomes
// U+FFFD, the same text a JavaScript or Python caller would have passed) -> split out added
// tokens (utils: added_tokens.h) -> per remaining piece: normalize (normalizer.h), pre-tokenize
// into words (pre_tokenizer.h), BPE each word (bpe_model.h) -> with add_special_tokens, wrap in
// the post-processor's special tokens (e.g. <bos>). Encode never fails.
//
// Bounded: Encode's memory and output are linear in its input whatever the tokenizer file says.
// Create refuses (kMalformed, naming the stage and the rule) a normalizer or pre-tokenizer that
// could grow a piece of text more than 16-fold plus 64 bytes (growth_bound.h); BPE then emits at
// most one token per byte. So a hostile normalizer (" " -> 100 spaces) fails when the tokenizer
// loads, before any prompt is read, and every caller reports it as a load error.
//
// Decoding: ids -> token strings (added token contents or vocabulary pieces; unknown ids are
// skipped, special tokens optionally) -> decoder chain (decoder.h). Output is valid UTF-8.
//
// Tokenizer is immutable after loading; all const methods are thread-safe. It is movable and
// self-contained (no references to the source file).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace kiln::tokenizer {

struct EncodeOptions {
  // Add the post-processor's tokens (e.g. <bos> for Gemma, <s> for Mistral).
  bool add_special_tokens = false;
  // Match special added tokens ("<start_of_turn>") in the text. Turn off for untrusted text.
  bool parse_special = true;
};

// Everything a loader extracts; Tokenizer::Create validates and assembles it.
struct TokenizerSpec {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::vector<std::string> pieces;  // pieces[id]; "" for ids that only exist as added tokens
  MergeList merges;
  BpeModel::Options bpe_options;
  std::vector<AddedToken> added_tokens;
  Decoder decoder;
  std::vector<TokenId> prefix_ids;  // post-processor tokens before / after the sequence
  std::vector<TokenId> suffix_ids;
  std::string description;  // e.g. "tokenizer.json BPE, byte fallback, 262144 tokens"
};

class Tokenizer {
 public:
  // kMalformed when ids are out of range, the vocabulary has duplicates, or the normalizer or
  // pre-tokenizer can grow text past the limits of growth_bound.h.
  static Result<Tokenizer> Create(TokenizerSpec spec);

  std::vector<TokenId> Encode(std::string_view text, const EncodeOptions& options = {}) const;
  std::string Decode(const std::vector<TokenId>& ids, bool skip_special_tokens = false) const;

  // Number of ids (largest id + 1, counting added tokens).
  size_t vocab_size() const { return vocab_size_; }
  // The token's string as stored (added token content or vocabulary piece); "" if unknown.
  std::string_view IdToPiece(TokenId id) const;
  // Id of an added token content or vocabulary piece.
  std::optional<TokenId> PieceToId(std::string_view piece) const;
  bool IsSpecial(TokenId id) const;
  bool IsAddedToken(TokenId id) const;
  const Normalizer& normalizer() const { return normalizer_; }
  const PreTokenizer& pre_tokenizer() const { return pre_tokenizer_; }
  const Decoder& decoder() const { return decoder_; }
  const std::vector<TokenId>& prefix_ids() const { return prefix_ids_; }
  const std::vector<TokenId>& suffix_ids() const { return suffix_ids_; }
  const std::string& description() const { return description_; }

 private:
  void EncodeText(std::string_view text, bool is_first_segment, bool parse_special,
                  std::vector<TokenId>* ids) const;

  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  BpeModel bpe_;
  AddedTokenMatcher added_raw_;         // normalized == false: matched on the raw text
  AddedTokenMatcher added_normalized_;  // normalized == true: matched on normalized text
  std::vector<int8_t> added_kind_;      // per id: 0 none, 1 added, 2 added special
  std::unordered_map<TokenId, std::string> added_content_;  // content of each added token
  Decoder decoder_;
  std::vector<TokenId> prefix_ids_, suffix_ids_;
  size_t vocab_size_ = 0;
  std::string description_;
};

// Incremental decoding of a generated token stream. Push returns the text that became final:
// complete UTF-8 characters only, so a caller may print each result immediately. Concatenating
// all Push results and Flush equals tokenizer.Decode(all ids) whenever that decoded text is
// valid UTF-8 (see decoder.h for invalid byte runs). Holds a pointer to the tokenizer, which
// must outlive it. Not thread-safe; one per stream.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string Push(TokenId id);
  // Ends the stream: returns what was held back (a partial character becomes U+FFFD).
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  bool native_;  // decoder supports per-token bytes; otherwise re-decode the whole stream
  size_t index_ = 0;
  Utf8Assembler assembler_;
  std::string strip_char_;
  size_t strip_left_ = 0;  // leading strip still to apply
  std::vector<TokenId> ids_;  // fallback mode
  std::string emitted_;       // fallback mode
};

}  // namespace kiln::tokenizer
