#include "constraint/vocabulary.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "constraint/plain_text.h"

namespace kiln::constraint {

// Tokens longer than this are never allowed (the trie depth is a uint16_t; no real vocabulary
// comes close).
static constexpr size_t kMaxTokenBytes = 4096;

namespace {

TokenTrie BuildTrie(const std::vector<std::string>& b, std::vector<TokenId> order) {
  TokenTrie trie;
  std::stable_sort(order.begin(), order.end(), [&](TokenId x, TokenId y) { return b[x] < b[y]; });

  // Preorder insertion of sorted strings: a token shares the path of its longest common prefix
  // with the previous one; nodes deeper than that prefix are closed (subtree_end set).
  std::vector<uint32_t> open;  // node index at each depth - 1 on the current path
  std::string_view previous;
  auto close_to = [&](size_t depth) {
    while (open.size() > depth) {
      trie.node_subtree_end[open.back()] = static_cast<uint32_t>(trie.node_byte.size());
      open.pop_back();
    }
  };
  std::vector<std::vector<TokenId>> node_tokens;
  for (TokenId id : order) {
    const std::string_view s = b[id];
    size_t common = 0;
    while (common < s.size() && common < previous.size() && s[common] == previous[common]) ++common;
    close_to(common);
    for (size_t d = common; d < s.size(); ++d) {
      open.push_back(static_cast<uint32_t>(trie.node_byte.size()));
      trie.node_byte.push_back(static_cast<uint8_t>(s[d]));
      trie.node_depth.push_back(static_cast<uint16_t>(d + 1));
      trie.node_subtree_end.push_back(0);
      node_tokens.emplace_back();
    }
    node_tokens[open.back()].push_back(id);
    trie.max_depth = std::max(trie.max_depth, s.size());
    previous = s;
  }
  close_to(0);
  trie.node_tokens_begin.push_back(0);
  for (const std::vector<TokenId>& ids : node_tokens) {
    trie.token_ids.insert(trie.token_ids.end(), ids.begin(), ids.end());
    trie.node_tokens_begin.push_back(static_cast<uint32_t>(trie.token_ids.size()));
  }
  // Bytes below each node, children first (reverse preorder); interned, as few sets repeat.
  const size_t n = trie.node_byte.size();
  std::vector<TokenTrie::ByteSet> below(n, TokenTrie::ByteSet{});
  for (size_t i = n; i-- > 0;) {
    for (size_t child = i + 1; child < trie.node_subtree_end[i]; child = trie.node_subtree_end[child]) {
      const uint8_t byte = trie.node_byte[child];
      below[i][byte >> 6] |= uint64_t{1} << (byte & 63);
      for (int w = 0; w < 4; ++w) below[i][w] |= below[child][w];
    }
  }
  std::map<TokenTrie::ByteSet, uint32_t> set_ids;
  trie.node_below_set.resize(n);
  for (size_t i = 0; i < n; ++i) {
    auto [it, inserted] = set_ids.emplace(below[i], static_cast<uint32_t>(trie.byte_sets.size()));
    if (inserted) trie.byte_sets.push_back(below[i]);
    trie.node_below_set[i] = it->second;
  }
  return trie;
}

}  // namespace

Result<std::shared_ptr<const TokenVocabulary>> TokenVocabulary::FromTokenizer(
    const tokenizer::Tokenizer& tokenizer, std::span<const TokenId> eos_ids) {
  const tokenizer::Decoder& decoder = tokenizer.decoder();
  if (!decoder.CanStream()) {
    return Error(ErrorCode::kUnsupported,
                 "the tokenizer's decoder cannot give per-token bytes, so constrained decoding "
                 "cannot map tokens to text");
  }
  std::vector<std::optional<std::string>> bytes(tokenizer.vocab_size());
  for (size_t id = 0; id < bytes.size(); ++id) {
    const auto token = static_cast<TokenId>(id);
    if (tokenizer.IsSpecial(token)) continue;
    const std::string_view piece = tokenizer.IdToPiece(token);
    if (piece.empty()) continue;
    std::string out;
    if (tokenizer.IsAddedToken(token)) {
      out.assign(piece);  // a plain added token is its literal content
    } else {
      // Index 1: a token in the middle of the stream (no leading-space stripping).
      decoder.TokenBytes(piece, /*index=*/1, &out);
    }
    bytes[id] = std::move(out);
  }
  return FromTokenBytes(bytes, eos_ids);
}

Result<std::shared_ptr<const TokenVocabulary>> TokenVocabulary::FromTokenBytes(
    const std::vector<std::optional<std::string>>& bytes, std::span<const TokenId> eos_ids) {
  auto vocab = std::make_shared<TokenVocabulary>();
  vocab->num_tokens_ = bytes.size();
  vocab->is_eos_.assign(bytes.size(), 0);
  vocab->bytes_.resize(bytes.size());
  for (TokenId id : eos_ids) {
    if (id < 0 || static_cast<size_t>(id) >= bytes.size()) {
      return Error(ErrorCode::kInvalidArgument, "end-of-sequence id " + std::to_string(id) +
                                                    " is outside the vocabulary of " +
                                                    std::to_string(bytes.size()) + " tokens");
    }
    if (!vocab->is_eos_[id]) vocab->eos_ids_.push_back(id);
    vocab->is_eos_[id] = 1;
  }
  std::vector<TokenId> all, rest;
  vocab->plain_masks_.assign(kMaxPlainChars * vocab->mask_words(), 0);
  for (size_t id = 0; id < bytes.size(); ++id) {
    if (vocab->is_eos_[id] || !bytes[id].has_value() || bytes[id]->empty()) continue;
    if (bytes[id]->size() > kMaxTokenBytes) continue;
    vocab->bytes_[id] = *bytes[id];
    all.push_back(static_cast<TokenId>(id));
    const int chars = PlainCharCount(*bytes[id]);
    if (chars == 0) {
      rest.push_back(static_cast<TokenId>(id));
      continue;
    }
    for (int k = chars; k <= kMaxPlainChars; ++k) {
      vocab->plain_masks_[(k - 1) * vocab->mask_words() + id / 64] |= uint64_t{1} << (id % 64);
    }
  }
  vocab->trie_ = BuildTrie(vocab->bytes_, std::move(all));
  vocab->rest_trie_ = BuildTrie(vocab->bytes_, std::move(rest));
  return std::shared_ptr<const TokenVocabulary>(std::move(vocab));
}

bool TokenVocabulary::IsEos(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < num_tokens_ && is_eos_[id] != 0;
}

std::string_view TokenVocabulary::TokenBytes(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= num_tokens_) return {};
  return bytes_[id];
}

}  // namespace kiln::constraint
