// Regular expressions (the subset used for structured output) to Expr.
//
// The whole output must match: a leading ^ and a trailing $ are accepted and mean nothing more;
// anywhere else they are refused, as are backreferences, lookaround, word boundaries and
// possessive quantifiers, each by name. `.` matches any character except \n.
#include <string>

#include "constraint/constraint.h"
#include "constraint/text_cursor.h"

namespace kiln::constraint {
namespace {

std::vector<CodepointRange> DigitRanges() { return {{'0', '9'}}; }
std::vector<CodepointRange> WordRanges() { return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; }
std::vector<CodepointRange> SpaceRanges() { return {{'\t', '\r'}, {' ', ' '}}; }

class RegexParser {
 public:
  RegexParser(std::string_view pattern, const std::string& what) : in_(pattern, what) {}

  Result<Expr> Parse() {
    if (in_.Peek() == '^') in_.Advance();
    TRY_ASSIGN(Expr e, ParseAlternatives(0));
    if (!in_.AtEnd()) {
      if (in_.Peek() == ')') return in_.ErrorHere("unbalanced ')'");
      return in_.ErrorHere(std::string("unexpected '") + in_.Peek() + "'");
    }
    return e;
  }

 private:
  Result<Expr> ParseAlternatives(int depth) {
    if (depth > kMaxNestingDepth) {
      return in_.ErrorHere("groups nested deeper than " + std::to_string(kMaxNestingDepth));
    }
    std::vector<Expr> alternatives;
    while (true) {
      TRY_ASSIGN(Expr seq, ParseSequence(depth));
      alternatives.push_back(std::move(seq));
      if (in_.Peek() != '|') break;
      in_.Advance();
    }
    return Alt(std::move(alternatives));
  }

  Result<Expr> ParseSequence(int depth) {
    std::vector<Expr> items;
    while (!in_.AtEnd() && in_.Peek() != '|' && in_.Peek() != ')') {
      if (in_.Peek() == '$') {
        // Only at the very end (of the pattern, or of a top-level alternative).
        if (depth == 0 && (in_.pos() + 1 == in_.text().size() || in_.Peek(1) == '|')) {
          in_.Advance();
          continue;
        }
        return in_.ErrorHere("anchor '$' inside the pattern is not supported (the whole output is matched)");
      }
      if (in_.Peek() == '^') {
        if (depth == 0 && items.empty()) {
          in_.Advance();
          continue;
        }
        return in_.ErrorHere("anchor '^' inside the pattern is not supported (the whole output is matched)");
      }
      TRY_ASSIGN(Expr atom, ParseAtom(depth));
      TRY_ASSIGN(atom, ParseQuantifiers(std::move(atom)));
      items.push_back(std::move(atom));
    }
    return Seq(std::move(items));
  }

  Result<Expr> ParseQuantifiers(Expr atom) {
    for (int stacked = 0;; ++stacked) {
      // Each quantifier nests the atom once more; bound it like group nesting.
      if (stacked > kMaxStackedQuantifiers) return in_.ErrorHere("too many quantifiers on one item");
      const size_t start = in_.pos();
      const char c = in_.Peek();
      int64_t min = 0, max = -1;
      if (c == '*') {
        in_.Advance();
      } else if (c == '+') {
        in_.Advance();
        min = 1;
      } else if (c == '?') {
        in_.Advance();
        max = 1;
      } else if (c == '{' && in_.Peek(1) >= '0' && in_.Peek(1) <= '9') {
        in_.Advance();
        TRY_ASSIGN(min, ReadCount(start));
        max = min;
        if (in_.Peek() == ',') {
          in_.Advance();
          max = -1;
          if (in_.Peek() != '}') { TRY_ASSIGN(max, ReadCount(start)); }
        }
        if (in_.Peek() != '}') return in_.ErrorHere("expected '}' to close the quantifier");
        in_.Advance();
        if (max >= 0 && max < min) return in_.ErrorAt(start, "quantifier {m,n} with n < m");
      } else {
        return atom;
      }
      if (in_.Peek() == '?') {
        in_.Advance();  // lazy: the same set of strings
      } else if (in_.Peek() == '+') {
        return in_.ErrorHere("possessive quantifiers are not supported");
      }
      atom = Rep(std::move(atom), min, max);
    }
  }

  Result<int64_t> ReadCount(size_t start) { return in_.ReadCount(start, "quantifier"); }

  Result<Expr> ParseAtom(int depth) {
    const char c = in_.Peek();
    switch (c) {
      case '(': return ParseGroup(depth);
      case '[': return ParseClass();
      case '.':
        in_.Advance();
        return Class({{'\n', '\n'}}, /*negated=*/true);
      case '*': case '+': case '?':
        return in_.ErrorHere(std::string("quantifier '") + c + "' has nothing to repeat");
      case '\\': {
        const size_t escape = in_.pos();
        in_.Advance();
        std::vector<CodepointRange> ranges;
        bool negated = false;
        TRY_ASSIGN(bool is_class, ReadClassEscape(escape, &ranges, &negated));
        if (is_class) return Class(std::move(ranges), negated);
        TRY_ASSIGN(uint32_t cp, in_.ReadEscapedCodepoint(escape));
        std::string bytes;
        AppendUtf8(cp, &bytes);
        return Lit(std::move(bytes));
      }
      default: {
        TRY_ASSIGN(uint32_t cp, in_.ReadCodepoint());
        std::string bytes;
        AppendUtf8(cp, &bytes);
        return Lit(std::move(bytes));
      }
    }
  }

  Result<Expr> ParseGroup(int depth) {
    const size_t start = in_.pos();
    in_.Advance();
    if (in_.Peek() == '?') {
      if (in_.StartsWith("?:")) {
        in_.Advance(2);
      } else if (in_.StartsWith("?=") || in_.StartsWith("?!")) {
        return in_.ErrorAt(start, "lookahead assertions are not supported");
      } else if (in_.StartsWith("?<=") || in_.StartsWith("?<!")) {
        return in_.ErrorAt(start, "lookbehind assertions are not supported");
      } else if (in_.StartsWith("?<") || in_.StartsWith("?P<")) {
        while (!in_.AtEnd() && in_.Peek() != '>') in_.Advance();  // a named group is a group
        if (in_.AtEnd()) return in_.ErrorAt(start, "unterminated group name");
        in_.Advance();
      } else {
        return in_.ErrorAt(start, "group flags and other (?...) constructs are not supported");
      }
    }
    TRY_ASSIGN(Expr inner, ParseAlternatives(depth + 1));
    if (in_.Peek() != ')') return in_.ErrorAt(start, "unterminated group: expected ')'");
    in_.Advance();
    return inner;
  }

  // Escapes that stand for classes or are refused; true when one was read into `ranges`.
  Result<bool> ReadClassEscape(size_t escape, std::vector<CodepointRange>* ranges, bool* negated) {
    const char c = in_.Peek();
    switch (c) {
      case 'd': case 'D': *ranges = DigitRanges(); break;
      case 'w': case 'W': *ranges = WordRanges(); break;
      case 's': case 'S': *ranges = SpaceRanges(); break;
      case 'b': case 'B':
        return in_.ErrorAt(escape, "word boundaries (\\b, \\B) are not supported");
      case 'A': case 'z': case 'Z': case 'G':
        return in_.ErrorAt(escape, std::string("anchor \\") + c + " is not supported (the whole output is matched)");
      case 'k':
        return in_.ErrorAt(escape, "backreferences are not supported");
      case 'p': case 'P':
        return in_.ErrorAt(escape, "Unicode property classes (\\p{...}) are not supported");
      default:
        if (c >= '1' && c <= '9') return in_.ErrorAt(escape, "backreferences are not supported");
        return false;
    }
    *negated = c >= 'A' && c <= 'Z';
    in_.Advance();
    return true;
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
    bool first_item = true;
    while (true) {
      if (in_.AtEnd()) return in_.ErrorAt(start, "unterminated character class");
      if (in_.Peek() == ']' && !first_item) break;
      first_item = false;
      if (in_.StartsWith("[:")) return in_.ErrorHere("POSIX classes ([:alpha:]) are not supported");
      uint32_t first = 0;
      if (in_.Peek() == '\\') {
        const size_t escape = in_.pos();
        in_.Advance();
        std::vector<CodepointRange> escaped;
        bool escaped_negated = false;
        bool is_class = false;
        if (in_.Peek() != 'b') { TRY_ASSIGN(is_class, ReadClassEscape(escape, &escaped, &escaped_negated)); }
        if (is_class) {
          // \D, \W, \S inside a class: add the complement.
          if (escaped_negated) escaped = ComplementRanges(escaped);
          ranges.insert(ranges.end(), escaped.begin(), escaped.end());
          continue;
        }
        if (in_.Peek() == 'b') {  // [\b] is backspace
          in_.Advance();
          first = '\b';
        } else {
          TRY_ASSIGN(first, in_.ReadEscapedCodepoint(escape));
        }
      } else {
        TRY_ASSIGN(first, in_.ReadCodepoint());
      }
      uint32_t last = first;
      if (in_.Peek() == '-' && in_.Peek(1) != ']' && in_.Peek(1) != '\0') {
        in_.Advance();
        if (in_.Peek() == '\\') {
          const size_t escape = in_.pos();
          in_.Advance();
          TRY_ASSIGN(last, in_.ReadEscapedCodepoint(escape));
        } else {
          TRY_ASSIGN(last, in_.ReadCodepoint());
        }
        if (last < first) return in_.ErrorHere("character range is out of order");
      }
      ranges.push_back({first, last});
    }
    in_.Advance();
    return Class(std::move(ranges), negated);
  }

  static std::vector<CodepointRange> ComplementRanges(const std::vector<CodepointRange>& ranges) {
    std::vector<CodepointRange> out;
    uint32_t next = 0;
    for (const CodepointRange& r : ranges) {  // sorted, disjoint (the fixed classes above)
      if (r.first > next) out.push_back({next, r.first - 1});
      next = r.last + 1;
    }
    out.push_back({next, 0x10FFFF});
    return out;
  }

  TextCursor in_;
};

}  // namespace

Result<Expr> ParseRegex(std::string_view pattern, const std::string& what) {
  return RegexParser(pattern, what).Parse();
}

Result<std::shared_ptr<const Grammar>> CompileRegex(std::string_view pattern) {
  TRY_ASSIGN(Expr e, ParseRegex(pattern));
  GrammarSpec spec;
  spec.rules.push_back({"root", std::move(e)});
  return CompileGrammar(spec, "root");
}

}  // namespace kiln::constraint
