#include "tokenizer/utf8.h"

namespace kiln::tokenizer {

size_t Utf8SequenceLength(std::string_view text, size_t pos, size_t* maximal_subpart_bytes,
                          bool* incomplete) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  if (incomplete != nullptr) *incomplete = false;
  if (maximal_subpart_bytes != nullptr) *maximal_subpart_bytes = 1;
  const unsigned char b0 = s[pos];
  if (b0 < 0x80) return 1;
  size_t length = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;  // stray continuation byte or C0/C1/F5..FF
  }
  for (size_t i = 1; i < length; ++i) {
    if (pos + i >= n) {
      if (incomplete != nullptr) *incomplete = true;
      if (maximal_subpart_bytes != nullptr) *maximal_subpart_bytes = i;
      return 0;
    }
    const unsigned char b = s[pos + i];
    const bool ok = (i == 1) ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      if (maximal_subpart_bytes != nullptr) *maximal_subpart_bytes = i;
      return 0;
    }
  }
  return length;
}

char32_t DecodeUtf8At(std::string_view text, size_t pos, size_t length) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  switch (length) {
    case 1:
      return s[0];
    case 2:
      return ((s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3:
      return ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    default:
      return ((s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
  }
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t length = Utf8SequenceLength(text, pos);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view text) {
  if (IsValidUtf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t subpart = 1;
    const size_t length = Utf8SequenceLength(text, pos, &subpart);
    if (length == 0) {
      out.append(kReplacementUtf8);
      pos += subpart;
    } else {
      out.append(text.substr(pos, length));
      pos += length;
    }
  }
  return out;
}

std::string Utf8Assembler::Push(std::string_view bytes) {
  std::string input = std::move(pending_);
  pending_.clear();
  input.append(bytes);
  std::string out;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t subpart = 1;
    bool incomplete = false;
    const size_t length = Utf8SequenceLength(input, pos, &subpart, &incomplete);
    if (length > 0) {
      out.append(input, pos, length);
      pos += length;
    } else if (incomplete) {
      pending_.assign(input, pos, std::string::npos);  // wait for the rest of the character
      break;
    } else {
      out.append(kReplacementUtf8);
      pos += subpart;
    }
  }
  return out;
}

std::string Utf8Assembler::Flush() {
  if (pending_.empty()) return {};
  pending_.clear();
  return std::string(kReplacementUtf8);
}

}  // namespace kiln::tokenizer
