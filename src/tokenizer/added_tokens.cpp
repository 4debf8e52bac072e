#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"

namespace kiln::tokenizer {
namespace {

bool IsWordByte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

// Length of the Unicode whitespace character at text[pos], or 0.
size_t WhitespaceAt(std::string_view text, size_t pos) {
  const size_t length = Utf8SequenceLength(text, pos);
  if (length == 0 || !IsUnicodeWhitespace(DecodeUtf8At(text, pos, length))) return 0;
  return length;
}

// Length of the whitespace character ending at text[end-1], or 0.
size_t WhitespaceBefore(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return WhitespaceAt(text, start) == end - start ? end - start : 0;
}

}  // namespace

int32_t AddedTokenMatcher::Child(int32_t node, uint8_t byte) const {
  const auto& children = nodes_[node].children;
  auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1}));
  return (it != children.end() && it->first == byte) ? it->second : -1;
}

void AddedTokenMatcher::Add(const AddedToken& token) {
  if (token.content.empty()) return;
  int32_t node = 0;
  for (char c : token.content) {
    const auto byte = static_cast<uint8_t>(c);
    int32_t next = Child(node, byte);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_.push_back(Node{});
      auto& children = nodes_[node].children;
      children.insert(std::upper_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1})),
                      {byte, next});
    }
    node = next;
  }
  can_start_[static_cast<uint8_t>(token.content[0])] = true;
  if (nodes_[node].token >= 0) {
    tokens_[nodes_[node].token] = token;
  } else {
    nodes_[node].token = static_cast<int32_t>(tokens_.size());
    tokens_.push_back(token);
  }
}

bool AddedTokenMatcher::Accepts(const AddedToken& token, std::string_view text, size_t begin, size_t end) const {
  if (!token.single_word) return true;
  const bool left_ok = begin == 0 || !IsWordByte(static_cast<unsigned char>(text[begin - 1]));
  const bool right_ok = end == text.size() || !IsWordByte(static_cast<unsigned char>(text[end]));
  return left_ok && right_ok;
}

std::vector<TextPiece> AddedTokenMatcher::Split(std::string_view text, bool match_special) const {
  std::vector<TextPiece> pieces;
  size_t text_start = 0;  // start of the pending ordinary text
  size_t pos = 0;
  while (pos < text.size()) {
    if (!can_start_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    // Longest accepted token starting at pos.
    int32_t best = -1;
    size_t best_end = 0;
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      node = Child(node, static_cast<uint8_t>(text[i]));
      if (node < 0) break;
      const int32_t index = nodes_[node].token;
      if (index >= 0 && (match_special || !tokens_[index].special) &&
          Accepts(tokens_[index], text, pos, i + 1)) {
        best = index;
        best_end = i + 1;
      }
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[best];
    size_t match_begin = pos, match_end = best_end;
    if (token.lstrip) {
      while (match_begin > text_start) {
        const size_t ws = WhitespaceBefore(text, match_begin);
        if (ws == 0) break;
        match_begin -= ws;
      }
    }
    if (token.rstrip) {
      while (match_end < text.size()) {
        const size_t ws = WhitespaceAt(text, match_end);
        if (ws == 0) break;
        match_end += ws;
      }
    }
    if (match_begin > text_start) pieces.push_back({text.substr(text_start, match_begin - text_start), -1});
    pieces.push_back({text.substr(pos, best_end - pos), token.id});
    text_start = pos = match_end;
  }
  if (text_start < text.size()) pieces.push_back({text.substr(text_start), -1});
  return pieces;
}

}  // namespace kiln::tokenizer
