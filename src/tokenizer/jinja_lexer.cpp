#include "tokenizer/jinja_lexer.h"

#include <cctype>
#include <cstdlib>

namespace kiln::tokenizer::jinja {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class Lexer {
 public:
  Lexer(std::string_view source, const LexerOptions& options) : src_(source), options_(options) {}

  Result<std::vector<Token>> Run() {
    size_t text_begin = 0;
    while (true) {
      const size_t tag = FindTag(text_begin);
      std::string text(src_.substr(text_begin, tag - text_begin));
      if (tag == src_.size()) {
        EmitText(std::move(text));
        break;
      }
      const char type = src_[tag + 1];  // '{', '%' or '#'
      size_t pos = tag + 2;
      const char modifier = pos < src_.size() ? src_[pos] : '\0';
      if (modifier == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
        ++pos;
      } else if (modifier == '+') {
        ++pos;
      } else if (type != '{' && options_.lstrip_blocks) {
        LstripText(&text, text_begin);
      }
      EmitText(std::move(text));
      line_ = LineAt(pos);
      if (type == '#') {
        const size_t end = src_.find("#}", pos);
        if (end == std::string_view::npos) return Fail("unterminated comment");
        text_begin = AfterTag(end, end + 2, true);
        continue;
      }
      TRY_ASSIGN(size_t end_pos, LexExpression(pos, type == '{' ? "}}" : "%}", type == '{'));
      // Raw block: everything up to {% endraw %} is text.
      const size_t n = tokens_.size();
      if (type == '%' && n >= 3 && tokens_[n - 3].kind == TokenKind::kBlockBegin && tokens_[n - 2].kind == TokenKind::kName &&
          tokens_[n - 2].text == "raw") {
        tokens_.resize(n - 3);
        TRY_ASSIGN(text_begin, LexRaw(end_pos));
        continue;
      }
      text_begin = end_pos;
    }
    tokens_.push_back(Token{TokenKind::kEnd, "", 0, 0, line_});
    return std::move(tokens_);
  }

 private:
  Error Fail(const std::string& what) const {
    return Error(ErrorCode::kInvalidArgument, "chat template line " + std::to_string(line_) + ": " + what);
  }
  int LineAt(size_t pos) const {
    int line = 1;
    for (size_t i = 0; i < pos && i < src_.size(); ++i) line += src_[i] == '\n';
    return line;
  }
  size_t FindTag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return src_.size();
  }
  void EmitText(std::string text) {
    if (!text.empty()) tokens_.push_back(Token{TokenKind::kText, std::move(text), 0, 0, line_});
  }
  // lstrip_blocks: remove spaces/tabs between the start of the line and the tag.
  void LstripText(std::string* text, size_t text_begin) const {
    size_t i = text->size();
    while (i > 0 && ((*text)[i - 1] == ' ' || (*text)[i - 1] == '\t')) --i;
    const bool at_line_start = i > 0 ? (*text)[i - 1] == '\n' : (text_begin == 0 || src_[text_begin - 1] == '\n');
    if (at_line_start) text->resize(i);
  }
  // Position after a tag whose closing delimiter starts at `close`; applies "-" / trim_blocks.
  size_t AfterTag(size_t close, size_t after, bool is_block) const {
    const char before = close > 0 ? src_[close - 1] : '\0';
    if (before == '-') {
      while (after < src_.size() && IsSpace(src_[after])) ++after;
    } else if (is_block && options_.trim_blocks && before != '+') {
      if (after < src_.size() && src_[after] == '\n') {
        ++after;
      } else if (after + 1 < src_.size() && src_[after] == '\r' && src_[after + 1] == '\n') {
        after += 2;
      }
    }
    return after;
  }

  Result<size_t> LexExpression(size_t pos, std::string_view close, bool is_var) {
    tokens_.push_back(Token{is_var ? TokenKind::kVarBegin : TokenKind::kBlockBegin, "", 0, 0, line_});
    while (true) {
      while (pos < src_.size() && IsSpace(src_[pos])) {
        line_ += src_[pos] == '\n';
        ++pos;
      }
      if (pos >= src_.size()) return Fail(std::string("unterminated tag (missing '") + std::string(close) + "')");
      // Closing delimiter, possibly with a '-' or '+' modifier.
      const bool modified = (src_[pos] == '-' || src_[pos] == '+') && src_.substr(pos + 1, 2) == close;
      if (modified || src_.substr(pos, 2) == close) {
        const size_t close_at = modified ? pos + 1 : pos;
        tokens_.push_back(Token{is_var ? TokenKind::kVarEnd : TokenKind::kBlockEnd, "", 0, 0, line_});
        return AfterTag(close_at, close_at + 2, !is_var);
      }
      const char c = src_[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t end = pos;
        while (end < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
        tokens_.push_back(Token{TokenKind::kName, std::string(src_.substr(pos, end - pos)), 0, 0, line_});
        pos = end;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t end = pos;
        bool is_float = false;
        while (end < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
        if (end + 1 < src_.size() && src_[end] == '.' && std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
          is_float = true;
          ++end;
          while (end < src_.size() && std::isdigit(static_cast<unsigned char>(src_[end]))) ++end;
        }
        if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
          size_t e = end + 1;
          if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
          if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
            is_float = true;
            end = e;
            while (end < src_.size() && std::isdigit(static_cast<unsigned char>(src_[end]))) ++end;
          }
        }
        std::string number(src_.substr(pos, end - pos));
        std::erase(number, '_');
        Token t{is_float ? TokenKind::kFloat : TokenKind::kInt, number, 0, 0, line_};
        if (is_float) {
          t.float_value = std::strtod(number.c_str(), nullptr);
        } else {
          if (number.size() > 18) return Fail("integer literal too large: " + number);
          t.int_value = std::strtoll(number.c_str(), nullptr, 10);
        }
        tokens_.push_back(std::move(t));
        pos = end;
      } else if (c == '"' || c == '\'') {
        TRY_ASSIGN(pos, LexString(pos));
      } else {
        static const char* kOperators[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                           "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
        bool found = false;
        for (const char* op : kOperators) {
          const std::string_view o(op);
          if (src_.substr(pos, o.size()) == o) {
            tokens_.push_back(Token{TokenKind::kOperator, std::string(o), 0, 0, line_});
            pos += o.size();
            found = true;
            break;
          }
        }
        if (!found) return Fail(std::string("unexpected character '") + c + "'");
      }
    }
  }

  Result<size_t> LexString(size_t pos) {
    const char quote = src_[pos++];
    std::string value;
    while (pos < src_.size() && src_[pos] != quote) {
      char c = src_[pos++];
      if (c == '\n') ++line_;
      if (c == '\\' && pos < src_.size()) {
        const char e = src_[pos++];
        switch (e) {
          case 'n': c = '\n'; break;
          case 't': c = '\t'; break;
          case 'r': c = '\r'; break;
          case '\\': c = '\\'; break;
          case '\'': c = '\''; break;
          case '"': c = '"'; break;
          case '0': c = '\0'; break;
          default:
            value += '\\';
            c = e;
        }
      }
      value += c;
    }
    if (pos >= src_.size()) return Fail("unterminated string literal");
    tokens_.push_back(Token{TokenKind::kString, std::move(value), 0, 0, line_});
    return pos + 1;
  }

  // Emits the text of a raw block starting at `pos`; returns the position after {% endraw %}.
  Result<size_t> LexRaw(size_t pos) {
    for (size_t search = pos;;) {
      const size_t tag = src_.find("{%", search);
      if (tag == std::string_view::npos) return Fail("{% raw %} without {% endraw %}");
      size_t p = tag + 2;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      if (src_.substr(p, 6) != "endraw") {
        search = tag + 2;
        continue;
      }
      p += 6;
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      const bool modified = p < src_.size() && (src_[p] == '-' || src_[p] == '+');
      const size_t close = modified ? p + 1 : p;
      if (src_.substr(close, 2) != "%}") return Fail("malformed {% endraw %}");
      std::string text(src_.substr(pos, tag - pos));
      if (src_[tag + 2] == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      }
      EmitText(std::move(text));
      return AfterTag(close, close + 2, true);
    }
  }

  std::string_view src_;
  LexerOptions options_;
  std::vector<Token> tokens_;
  int line_ = 1;
};

}  // namespace

Result<std::vector<Token>> Lex(std::string_view source, const LexerOptions& options) {
  return Lexer(source, options).Run();
}

}  // namespace kiln::tokenizer::jinja
