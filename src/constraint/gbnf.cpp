// GBNF (llama.cpp's grammar notation) to GrammarSpec.
//
// A rule runs from `name ::=` to the next `name ::=` (or the end), so alternatives may continue
// on following lines whether or not they are inside parentheses. Whitespace and # comments are
// free everywhere between elements.
#include <cstdint>
#include <string>

#include "constraint/constraint.h"
#include "constraint/text_cursor.h"

namespace kiln::constraint {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view text) : in_(text, "grammar") {}

  Result<GrammarSpec> Parse() {
    GrammarSpec spec;
    SkipSpace();
    if (in_.AtEnd()) return in_.ErrorHere("empty grammar (expected rules such as: root ::= \"yes\" | \"no\")");
    while (!in_.AtEnd()) {
      const size_t start = in_.pos();
      std::string name = ReadName();
      if (name.empty()) return in_.ErrorHere("expected a rule name");
      SkipSpace();
      if (!in_.StartsWith("::=")) return in_.ErrorHere("expected '::=' after rule name '" + name + "'");
      in_.Advance(3);
      for (const NamedRule& r : spec.rules) {
        if (r.name == name) return in_.ErrorAt(start, "rule '" + name + "' is defined twice");
      }
      TRY_ASSIGN(Expr body, ParseAlternatives(0));
      if (!in_.AtEnd() && !AtRuleStart()) return in_.ErrorHere(std::string("unexpected '") + in_.Peek() + "'");
      spec.rules.push_back({std::move(name), std::move(body)});
    }
    return spec;
  }

 private:
  void SkipSpace() {
    while (!in_.AtEnd()) {
      const char c = in_.Peek();
      if (c == '#') {
        while (!in_.AtEnd() && in_.Peek() != '\n') in_.Advance();
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        in_.Advance();
      } else {
        break;
      }
    }
  }

  std::string ReadName() {
    std::string name;
    while (IsNameChar(in_.Peek())) {
      name.push_back(in_.Peek());
      in_.Advance();
    }
    return name;
  }

  // At `name ::=`: the current rule has ended.
  bool AtRuleStart() {
    const size_t saved = in_.pos();
    const bool is_name = !ReadName().empty();
    SkipSpace();
    const bool result = is_name && in_.StartsWith("::=");
    in_.set_pos(saved);
    return result;
  }

  Result<Expr> ParseAlternatives(int depth) {
    if (depth > kMaxNestingDepth) {
      return in_.ErrorHere("groups nested deeper than " + std::to_string(kMaxNestingDepth));
    }
    std::vector<Expr> alternatives;
    while (true) {
      TRY_ASSIGN(Expr seq, ParseSequence(depth));
      alternatives.push_back(std::move(seq));
      SkipSpace();
      if (in_.Peek() != '|') break;
      in_.Advance();
    }
    return Alt(std::move(alternatives));
  }

  Result<Expr> ParseSequence(int depth) {
    std::vector<Expr> items;
    while (true) {
      SkipSpace();
      if (in_.AtEnd() || in_.Peek() == '|' || in_.Peek() == ')' || AtRuleStart()) break;
      TRY_ASSIGN(Expr item, ParsePrimary(depth));
      TRY_ASSIGN(item, ParsePostfix(std::move(item)));
      items.push_back(std::move(item));
    }
    return Seq(std::move(items));  // empty sequence = the empty string
  }

  Result<Expr> ParsePostfix(Expr item) {
    for (int stacked = 0;; ++stacked) {
      // Each quantifier nests the item once more; bound it like group nesting.
      if (stacked > kMaxStackedQuantifiers) return in_.ErrorHere("too many quantifiers on one item");
      // A quantifier must follow its item directly or after spaces on the same line.
      const char c = in_.Peek();
      if (c == '*') { in_.Advance(); item = Rep(std::move(item), 0, -1); continue; }
      if (c == '+') { in_.Advance(); item = Rep(std::move(item), 1, -1); continue; }
      if (c == '?') { in_.Advance(); item = Rep(std::move(item), 0, 1); continue; }
      if (c == '{') {
        const size_t start = in_.pos();
        in_.Advance();
        SkipInlineSpace();
        int64_t min = 0;
        if (in_.Peek() != ',') { TRY_ASSIGN(min, ReadCount(start)); }  // {,n} means {0,n}
        int64_t max = min;
        SkipInlineSpace();
        if (in_.Peek() == ',') {
          in_.Advance();
          SkipInlineSpace();
          max = -1;
          if (in_.Peek() != '}') { TRY_ASSIGN(max, ReadCount(start)); }
        }
        SkipInlineSpace();
        if (in_.Peek() != '}') return in_.ErrorHere("expected '}' to close the repetition");
        in_.Advance();
        if (max >= 0 && max < min) return in_.ErrorAt(start, "repetition {m,n} with n < m");
        if (min > kMaxRepetition || max > kMaxRepetition) {
          return in_.ErrorAt(start, "repetition count above the limit of " + std::to_string(kMaxRepetition));
        }
        item = Rep(std::move(item), min, max);
        continue;
      }
      return item;
    }
  }

  void SkipInlineSpace() {
    while (in_.Peek() == ' ' || in_.Peek() == '\t') in_.Advance();
  }

  Result<int64_t> ReadCount(size_t start) {
    SkipInlineSpace();
    return in_.ReadCount(start, "repetition");
  }

  Result<Expr> ParsePrimary(int depth) {
    const char c = in_.Peek();
    if (c == '"') return ParseLiteral();
    if (c == '[') return ParseClass();
    if (c == '.') {
      in_.Advance();
      return Class({}, /*negated=*/true);
    }
    if (c == '(') {
      in_.Advance();
      TRY_ASSIGN(Expr inner, ParseAlternatives(depth + 1));
      SkipSpace();
      if (in_.Peek() != ')') return in_.ErrorHere("expected ')'");
      in_.Advance();
      return inner;
    }
    if (c == '<') return in_.ErrorHere("token references (<...>) are not supported; use literal text");
    if (IsNameChar(c)) return Ref(ReadName());
    return in_.ErrorHere(std::string("unexpected '") + c + "'");
  }

  Result<Expr> ParseLiteral() {
    const size_t start = in_.pos();
    in_.Advance();  // opening quote
    std::string bytes;
    while (true) {
      if (in_.AtEnd()) return in_.ErrorAt(start, "unterminated string literal");
      const char c = in_.Peek();
      if (c == '"') break;
      if (c == '\n') return in_.ErrorAt(start, "unterminated string literal (newline inside)");
      uint32_t cp = 0;
      if (c == '\\') {
        const size_t escape = in_.pos();
        in_.Advance();
        TRY_ASSIGN(cp, in_.ReadEscapedCodepoint(escape));
      } else {
        TRY_ASSIGN(cp, in_.ReadCodepoint());
      }
      AppendUtf8(cp, &bytes);
    }
    in_.Advance();
    return Lit(std::move(bytes));
  }

  Result<Expr> ParseClass() {
    const size_t start = in_.pos();
    in_.Advance();
    bool negated = false;
    if (in_.Peek() == '^') {
      negated = true;
      in_.Advance();
    }
    std::vector<CodepointRange> ranges;
    while (true) {
      if (in_.AtEnd()) return in_.ErrorAt(start, "unterminated character class");
      if (in_.Peek() == ']') break;
      TRY_ASSIGN(uint32_t first, ReadClassChar());
      uint32_t last = first;
      if (in_.Peek() == '-' && in_.Peek(1) != ']' && in_.Peek(1) != '\0') {
        in_.Advance();
        TRY_ASSIGN(last, ReadClassChar());
        if (last < first) return in_.ErrorHere("character range is out of order");
      }
      ranges.push_back({first, last});
    }
    in_.Advance();
    return Class(std::move(ranges), negated);
  }

  Result<uint32_t> ReadClassChar() {
    if (in_.Peek() == '\\') {
      const size_t escape = in_.pos();
      in_.Advance();
      return in_.ReadEscapedCodepoint(escape);
    }
    return in_.ReadCodepoint();
  }

  TextCursor in_;
};

}  // namespace

Result<GrammarSpec> ParseGbnf(std::string_view text) { return GbnfParser(text).Parse(); }

Result<std::shared_ptr<const Grammar>> CompileGbnf(std::string_view text) {
  TRY_ASSIGN(GrammarSpec spec, ParseGbnf(text));
  return CompileGrammar(spec, "root");
}

}  // namespace kiln::constraint
