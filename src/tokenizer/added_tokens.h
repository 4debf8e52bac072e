// Added tokens ("added_tokens" in tokenizer.json, control/user-defined tokens in GGUF): strings
// matched in the text before normalization and BPE, each emitted as its own id.
//
//   AddedTokenMatcher matcher;
//   matcher.Add({.id = 106, .content = "<end_of_turn>", .special = true});
//   std::vector<TextPiece> pieces = matcher.Split("hi<end_of_turn>", /*match_special=*/true);
//   // {{"hi", -1}, {"<end_of_turn>", 106}}
//
// Matching rule (HF AddedVocabulary): leftmost-longest over all tokens; a token with
// single_word matches only when not touching a word character (letter, digit, '_') on either
// side; lstrip/rstrip extend the match over adjacent Unicode whitespace, which is then dropped.
// With match_special=false, tokens marked special are not matched (their text is encoded as
// ordinary text) — use this for untrusted text so that "<bos>" typed by a user is not a control
// token. Tokens with normalized=true are matched by the caller on normalized text
// (see Tokenizer); this matcher only compares bytes.
//
// Cost: a byte trie; Split walks it from every position whose first byte can start a token, so
// O(text bytes x longest token) worst case. Thread-safety: const methods are safe concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe_model.h"

namespace kiln::tokenizer {

struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A piece of text: an added token (id >= 0) or ordinary text to encode (id == -1).
struct TextPiece {
  std::string_view text;
  TokenId id = -1;
};

class AddedTokenMatcher {
 public:
  // Empty content is ignored. A second token with the same content replaces the first.
  void Add(const AddedToken& token);
  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // Splits `text` into pieces whose views point into `text`. Empty text pieces are omitted.
  std::vector<TextPiece> Split(std::string_view text, bool match_special) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                  // index into tokens_
  };
  int32_t Child(int32_t node, uint8_t byte) const;
  bool Accepts(const AddedToken& token, std::string_view text, size_t begin, size_t end) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_{Node{}};
  std::array<bool, 256> can_start_{};
};

}  // namespace kiln::tokenizer
