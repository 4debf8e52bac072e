#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace kiln::tokenizer {
namespace {

void ReplaceAll(std::string* s, std::string_view pattern, std::string_view content) {
  if (pattern.empty() || s->find(pattern) == std::string::npos) return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s->find(pattern, pos)) != std::string::npos; pos = hit + pattern.size()) {
    out.append(*s, pos, hit - pos);
    out.append(content);
  }
  out.append(*s, pos, std::string::npos);
  *s = std::move(out);
}

// The byte of a "<0xXX>" token, or -1.
int ByteTokenValue(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    value <<= 4;
    if (c >= '0' && c <= '9') {
      value |= c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value |= c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      value |= c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

void ApplyStrip(std::string* token, std::string_view ch, size_t start, size_t stop) {
  if (ch.empty()) return;
  size_t begin = 0;
  for (size_t i = 0; i < start && token->compare(begin, ch.size(), ch) == 0; ++i) begin += ch.size();
  size_t end = token->size();
  for (size_t i = 0; i < stop && end >= begin + ch.size() && token->compare(end - ch.size(), ch.size(), ch) == 0; ++i) {
    end -= ch.size();
  }
  *token = token->substr(begin, end - begin);
}

}  // namespace

std::string Decoder::Decode(std::vector<std::string> tokens) const {
  if (steps.empty()) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  for (const DecoderStep& step : steps) {
    switch (step.kind) {
      case DecoderKind::kReplace:
        for (std::string& t : tokens) ReplaceAll(&t, step.pattern, step.content);
        break;
      case DecoderKind::kByteFallback: {
        std::vector<std::string> out;
        std::string run;  // bytes of consecutive <0xXX> tokens
        size_t run_tokens = 0;
        auto flush = [&] {
          if (run_tokens == 0) return;
          if (IsValidUtf8(run)) {
            out.push_back(run);
          } else {
            for (size_t i = 0; i < run_tokens; ++i) out.emplace_back(kReplacementUtf8);
          }
          run.clear();
          run_tokens = 0;
        };
        for (std::string& t : tokens) {
          const int byte = ByteTokenValue(t);
          if (byte >= 0) {
            run.push_back(static_cast<char>(byte));
            ++run_tokens;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case DecoderKind::kFuse: {
        std::string fused;
        for (const std::string& t : tokens) fused += t;
        tokens.assign(1, std::move(fused));
        break;
      }
      case DecoderKind::kStrip:
        for (std::string& t : tokens) ApplyStrip(&t, step.content, step.strip_start, step.strip_stop);
        break;
      case DecoderKind::kByteLevel: {
        std::string bytes;
        for (const std::string& t : tokens) ByteLevelDecode(t, &bytes);
        tokens.assign(1, SanitizeUtf8(bytes));
        break;
      }
      case DecoderKind::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          ReplaceAll(&tokens[i], step.replacement, " ");
          if (i == 0 && step.prepend && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

bool Decoder::CanStream() const {
  if (steps.empty()) return false;  // " " between tokens: handled by the generic fallback
  bool fused = false;
  for (const DecoderStep& step : steps) {
    if (step.kind == DecoderKind::kFuse || step.kind == DecoderKind::kByteLevel) {
      fused = true;
      continue;
    }
    if (step.kind == DecoderKind::kStrip) {
      // Only a leading strip applied to the whole (fused) stream can be streamed.
      if (!fused || step.strip_stop != 0) return false;
      continue;
    }
    if (fused) return false;  // per-token step after fusing: not a per-token function
  }
  return true;
}

std::pair<std::string, size_t> Decoder::LeadingStrip() const {
  for (const DecoderStep& step : steps) {
    if (step.kind == DecoderKind::kStrip) return {step.content, step.strip_start};
  }
  return {"", 0};
}

void Decoder::TokenBytes(std::string_view token, size_t index, std::string* out) const {
  std::string t(token);
  for (const DecoderStep& step : steps) {
    switch (step.kind) {
      case DecoderKind::kReplace:
        ReplaceAll(&t, step.pattern, step.content);
        break;
      case DecoderKind::kByteFallback: {
        const int byte = ByteTokenValue(t);
        if (byte >= 0) t.assign(1, static_cast<char>(byte));
        break;
      }
      case DecoderKind::kByteLevel: {
        std::string bytes;
        ByteLevelDecode(t, &bytes);
        t = std::move(bytes);
        break;
      }
      case DecoderKind::kMetaspace:
        ReplaceAll(&t, step.replacement, " ");
        if (index == 0 && step.prepend && !t.empty() && t[0] == ' ') t.erase(0, 1);
        break;
      case DecoderKind::kFuse:
      case DecoderKind::kStrip:  // applied to the stream start by the caller
        break;
    }
  }
  out->append(t);
}

}  // namespace kiln::tokenizer
