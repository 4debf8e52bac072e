#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "tokenizer/growth_bound.h"

namespace kiln::tokenizer {

Result<Tokenizer> Tokenizer::Create(TokenizerSpec spec) {
  // Before any work: a stage that could blow a prompt up is refused here, so Encode needs no
  // check (growth_bound.h).
  TRY(CheckStageGrowth("normalizer", spec.normalizer.Growth()));
  TRY(CheckStageGrowth("pre-tokenizer", spec.pre_tokenizer.Growth()));
  Tokenizer tok;
  const size_t num_pieces = spec.pieces.size();
  TRY_ASSIGN(tok.bpe_, BpeModel::Build(std::move(spec.pieces), spec.merges, spec.bpe_options));
  spec.merges.Clear();
  size_t vocab_size = num_pieces;
  for (const AddedToken& t : spec.added_tokens) {
    if (t.id < 0 || t.id > (1 << 30)) {
      return Error(ErrorCode::kMalformed, "added token '" + t.content + "' has invalid id " + std::to_string(t.id));
    }
    vocab_size = std::max(vocab_size, static_cast<size_t>(t.id) + 1);
  }
  tok.vocab_size_ = vocab_size;
  tok.added_kind_.assign(vocab_size, 0);
  tok.added_content_.reserve(spec.added_tokens.size());
  for (const AddedToken& t : spec.added_tokens) {
    tok.added_kind_[t.id] = t.special ? 2 : 1;
    tok.added_content_[t.id] = t.content;
    if (t.normalized) {
      AddedToken normalized = t;
      normalized.content = spec.normalizer.Apply(t.content);
      tok.added_normalized_.Add(normalized);
    } else {
      tok.added_raw_.Add(t);
    }
  }
  for (const auto* list : {&spec.prefix_ids, &spec.suffix_ids}) {
    for (TokenId id : *list) {
      if (id < 0 || static_cast<size_t>(id) >= vocab_size) {
        return Error(ErrorCode::kMalformed, "post-processor token id " + std::to_string(id) + " is not in the vocabulary");
      }
    }
  }
  if (auto unk = spec.bpe_options.unk_id; unk && (*unk < 0 || static_cast<size_t>(*unk) >= vocab_size)) {
    return Error(ErrorCode::kMalformed, "unk token id " + std::to_string(*unk) + " is not in the vocabulary");
  }
  tok.normalizer_ = std::move(spec.normalizer);
  tok.pre_tokenizer_ = std::move(spec.pre_tokenizer);
  tok.decoder_ = std::move(spec.decoder);
  tok.prefix_ids_ = std::move(spec.prefix_ids);
  tok.suffix_ids_ = std::move(spec.suffix_ids);
  tok.description_ = std::move(spec.description);
  return tok;
}

void Tokenizer::EncodeText(std::string_view text, bool is_first_segment, bool parse_special,
                           std::vector<TokenId>* ids) const {
  const std::string normalized = normalizer_.Apply(text);
  thread_local std::vector<std::string> words;
  auto encode_words = [&](std::string_view piece, bool first) {
    words.clear();
    pre_tokenizer_.Apply(piece, first, &words);
    for (const std::string& w : words) bpe_.EncodeWord(w, ids);
  };
  if (added_normalized_.empty()) {
    encode_words(normalized, is_first_segment);
    return;
  }
  bool first = is_first_segment;
  for (const TextPiece& p : added_normalized_.Split(normalized, parse_special)) {
    if (p.id >= 0) {
      ids->push_back(p.id);
    } else {
      encode_words(p.text, first);
    }
    first = false;
  }
}

std::vector<TokenId> Tokenizer::Encode(std::string_view text, const EncodeOptions& options) const {
  std::string repaired;
  if (!IsValidUtf8(text)) {
    repaired = SanitizeUtf8(text);
    text = repaired;
  }
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + prefix_ids_.size() + suffix_ids_.size() + 4);
  if (options.add_special_tokens) ids.insert(ids.end(), prefix_ids_.begin(), prefix_ids_.end());
  if (added_raw_.empty()) {
    if (!text.empty()) EncodeText(text, true, options.parse_special, &ids);
  } else {
    bool first = true;
    for (const TextPiece& p : added_raw_.Split(text, options.parse_special)) {
      if (p.id >= 0) {
        ids.push_back(p.id);
      } else {
        EncodeText(p.text, first, options.parse_special, &ids);
      }
      first = false;
    }
  }
  if (options.add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::string_view Tokenizer::IdToPiece(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_size_) return {};
  if (added_kind_[id] != 0) {
    auto it = added_content_.find(id);
    if (it != added_content_.end()) return it->second;
  }
  return bpe_.IdToPiece(id);
}

std::optional<TokenId> Tokenizer::PieceToId(std::string_view piece) const {
  for (const AddedTokenMatcher* m : {&added_raw_, &added_normalized_}) {
    for (const AddedToken& t : m->tokens()) {
      if (t.content == piece) return t.id;
    }
  }
  return bpe_.PieceToId(piece);
}

bool Tokenizer::IsSpecial(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < vocab_size_ && added_kind_[id] == 2;
}

bool Tokenizer::IsAddedToken(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < vocab_size_ && added_kind_[id] != 0;
}

std::string Tokenizer::Decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (TokenId id : ids) {
    if (skip_special_tokens && IsSpecial(id)) continue;
    const std::string_view piece = IdToPiece(id);
    if (piece.empty()) continue;
    tokens.emplace_back(piece);
  }
  std::string text = decoder_.Decode(std::move(tokens));
  // A hostile vocabulary can hold pieces that are not UTF-8; the output contract still holds.
  if (!IsValidUtf8(text)) text = SanitizeUtf8(text);
  return text;
}

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_(skip_special_tokens), native_(tokenizer.decoder().CanStream()) {
  std::tie(strip_char_, strip_left_) = tokenizer.decoder().LeadingStrip();
}

std::string StreamingDecoder::Push(TokenId id) {
  if (skip_special_ && tokenizer_->IsSpecial(id)) return {};
  const std::string_view piece = tokenizer_->IdToPiece(id);
  if (piece.empty()) return {};
  if (!native_) {
    // Generic path: decode the whole stream again and emit the new stable part. A suffix that
    // ends in U+FFFD may still change (an incomplete character), so it is held back.
    ids_.push_back(id);
    std::string text = tokenizer_->Decode(ids_, false);
    size_t stable = text.size();
    while (stable >= 3 && text.compare(stable - 3, 3, kReplacementUtf8) == 0) stable -= 3;
    if (stable < emitted_.size() || text.compare(0, emitted_.size(), emitted_) != 0) return {};
    std::string out = text.substr(emitted_.size(), stable - emitted_.size());
    emitted_ += out;
    return out;
  }
  std::string bytes;
  tokenizer_->decoder().TokenBytes(piece, index_++, &bytes);
  size_t begin = 0;
  while (strip_left_ > 0 && !strip_char_.empty() && bytes.compare(begin, strip_char_.size(), strip_char_) == 0) {
    begin += strip_char_.size();
    --strip_left_;
  }
  if (begin < bytes.size()) strip_left_ = 0;  // the strip only applies at the very start
  return assembler_.Push(std::string_view(bytes).substr(begin));
}

std::string StreamingDecoder::Flush() {
  if (!native_) {
    std::string text = tokenizer_->Decode(ids_, false);
    std::string out = text.size() > emitted_.size() ? text.substr(emitted_.size()) : std::string();
    ids_.clear();
    emitted_.clear();
    return out;
  }
  return assembler_.Flush();
}

}  // namespace kiln::tokenizer
