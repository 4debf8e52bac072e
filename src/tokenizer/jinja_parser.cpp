#include "tokenizer/jinja_parser.h"

#include <initializer_list>

namespace kiln::tokenizer::jinja {
namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<std::shared_ptr<const Program>> Run() {
    auto program = std::make_shared<Program>();
    std::string end_tag;
    TRY(ParseBody(&program->body, {}, &end_tag));
    return std::shared_ptr<const Program>(std::move(program));
  }

 private:
  const Token& Peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  Error Fail(const std::string& what) const {
    return Error(ErrorCode::kInvalidArgument, "chat template line " + std::to_string(Peek().line) + ": " + what);
  }
  Error Unsupported(const std::string& what) const {
    return Error(ErrorCode::kUnsupported,
                 "chat template line " + std::to_string(Peek().line) + ": " + what + " is not supported");
  }
  bool IsOp(const char* op, size_t ahead = 0) const {
    return Peek(ahead).kind == TokenKind::kOperator && Peek(ahead).text == op;
  }
  bool IsName(const char* name, size_t ahead = 0) const {
    return Peek(ahead).kind == TokenKind::kName && Peek(ahead).text == name;
  }
  Status ExpectOp(const char* op) {
    if (!IsOp(op)) return Fail(std::string("expected '") + op + "', found '" + Describe(Peek()) + "'");
    Next();
    return Status::Ok();
  }
  Status ExpectBlockEnd() {
    if (Peek().kind != TokenKind::kBlockEnd) return Fail("expected '%}', found '" + Describe(Peek()) + "'");
    Next();
    return Status::Ok();
  }
  Result<std::string> ExpectName() {
    if (Peek().kind != TokenKind::kName) return Fail("expected a name, found '" + Describe(Peek()) + "'");
    return Next().text;
  }
  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::kEnd: return "end of template";
      case TokenKind::kBlockEnd: return "%}";
      case TokenKind::kVarEnd: return "}}";
      case TokenKind::kText: return "text";
      default: return t.text;
    }
  }

  // Parses statements until a block tag whose keyword is in `ends` (returned in *end_tag, with
  // the tag's "{% keyword" consumed) or the end of the template (only when `ends` is empty).
  Status ParseBody(StmtList* out, std::initializer_list<const char*> ends, std::string* end_tag) {
    if (++depth_ > kMaxParseDepth) return Fail("blocks nested deeper than " + std::to_string(kMaxParseDepth));
    while (true) {
      const Token& t = Peek();
      if (t.kind == TokenKind::kEnd) {
        --depth_;
        if (ends.size() == 0) return Status::Ok();
        return Fail(std::string("missing {% ") + *ends.begin() + " %}");
      }
      if (t.kind == TokenKind::kText) {
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::kText;
        stmt->line = t.line;
        stmt->text = Next().text;
        out->push_back(std::move(stmt));
        continue;
      }
      if (t.kind == TokenKind::kVarBegin) {
        Next();
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::kOutput;
        stmt->line = t.line;
        TRY_ASSIGN(stmt->expr, ParseExpression());
        if (Peek().kind != TokenKind::kVarEnd) return Fail("expected '}}', found '" + Describe(Peek()) + "'");
        Next();
        out->push_back(std::move(stmt));
        continue;
      }
      if (t.kind != TokenKind::kBlockBegin) return Fail("unexpected '" + Describe(t) + "'");
      Next();
      TRY_ASSIGN(std::string keyword, ExpectName());
      for (const char* end : ends) {
        if (keyword == end) {
          *end_tag = keyword;
          --depth_;
          return Status::Ok();
        }
      }
      TRY(ParseStatement(keyword, out));
    }
  }

  Status ParseStatement(const std::string& keyword, StmtList* out) {
    auto stmt = std::make_unique<Stmt>();
    stmt->line = Peek().line;
    std::string end_tag;
    if (keyword == "if") {
      stmt->kind = StmtKind::kIf;
      TRY_ASSIGN(ExprPtr condition, ParseExpression());
      TRY(ExpectBlockEnd());
      while (true) {
        StmtList body;
        TRY(ParseBody(&body, {"elif", "else", "endif"}, &end_tag));
        stmt->branches.emplace_back(std::move(condition), std::move(body));
        if (end_tag == "endif") break;
        if (end_tag == "else") {
          TRY(ExpectBlockEnd());
          StmtList else_body;
          TRY(ParseBody(&else_body, {"endif"}, &end_tag));
          stmt->branches.emplace_back(nullptr, std::move(else_body));
          break;
        }
        TRY_ASSIGN(condition, ParseExpression());
        TRY(ExpectBlockEnd());
      }
      TRY(ExpectBlockEnd());
    } else if (keyword == "for") {
      stmt->kind = StmtKind::kFor;
      do {
        TRY_ASSIGN(std::string target, ExpectName());
        stmt->targets.push_back(std::move(target));
      } while (IsOp(",") && (Next(), true));
      if (!IsName("in")) return Fail("expected 'in' in for loop");
      Next();
      TRY_ASSIGN(stmt->expr, ParseExpression(/*allow_condition=*/false));
      if (IsName("if")) {
        Next();
        TRY_ASSIGN(stmt->condition, ParseExpression(false));
      }
      if (IsName("recursive")) return Unsupported("recursive for loop");
      TRY(ExpectBlockEnd());
      TRY(ParseBody(&stmt->body, {"else", "endfor"}, &end_tag));
      if (end_tag == "else") {
        TRY(ExpectBlockEnd());
        TRY(ParseBody(&stmt->else_body, {"endfor"}, &end_tag));
      }
      TRY(ExpectBlockEnd());
    } else if (keyword == "set") {
      TRY_ASSIGN(std::string first, ExpectName());
      stmt->targets.push_back(first);
      if (IsOp(".")) {
        Next();
        TRY_ASSIGN(stmt->attribute, ExpectName());
      }
      while (IsOp(",")) {
        Next();
        TRY_ASSIGN(std::string target, ExpectName());
        stmt->targets.push_back(std::move(target));
      }
      if (IsOp("=")) {
        Next();
        stmt->kind = StmtKind::kSet;
        TRY_ASSIGN(stmt->expr, ParseTupleOrExpression());
        TRY(ExpectBlockEnd());
      } else {
        if (stmt->targets.size() != 1 || !stmt->attribute.empty()) return Fail("block set takes one plain name");
        stmt->kind = StmtKind::kSetBlock;
        if (IsOp("|")) {
          Next();
          TRY_ASSIGN(stmt->filter, ParseFilterChain(nullptr));
        }
        TRY(ExpectBlockEnd());
        TRY(ParseBody(&stmt->body, {"endset"}, &end_tag));
        TRY(ExpectBlockEnd());
      }
    } else if (keyword == "macro") {
      stmt->kind = StmtKind::kMacro;
      TRY_ASSIGN(stmt->text, ExpectName());
      TRY(ExpectOp("("));
      while (!IsOp(")")) {
        TRY_ASSIGN(std::string param, ExpectName());
        ExprPtr default_value;
        if (IsOp("=")) {
          Next();
          TRY_ASSIGN(default_value, ParseExpression());
        }
        stmt->params.emplace_back(std::move(param), std::move(default_value));
        if (!IsOp(",")) break;
        Next();
      }
      TRY(ExpectOp(")"));
      TRY(ExpectBlockEnd());
      TRY(ParseBody(&stmt->body, {"endmacro"}, &end_tag));
      if (Peek().kind == TokenKind::kName) Next();  // {% endmacro name %}
      TRY(ExpectBlockEnd());
    } else if (keyword == "filter") {
      stmt->kind = StmtKind::kFilterBlock;
      TRY_ASSIGN(stmt->filter, ParseFilterChain(nullptr));
      TRY(ExpectBlockEnd());
      TRY(ParseBody(&stmt->body, {"endfilter"}, &end_tag));
      TRY(ExpectBlockEnd());
    } else if (keyword == "break" || keyword == "continue") {
      stmt->kind = keyword == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      TRY(ExpectBlockEnd());
    } else if (keyword == "generation") {
      // transformers' {% generation %} marks assistant text for masks; it renders its body.
      TRY(ExpectBlockEnd());
      StmtList body;
      TRY(ParseBody(&body, {"endgeneration"}, &end_tag));
      TRY(ExpectBlockEnd());
      for (StmtPtr& s : body) out->push_back(std::move(s));
      return Status::Ok();
    } else {
      return Unsupported("statement '{% " + keyword + " %}'");
    }
    out->push_back(std::move(stmt));
    return Status::Ok();
  }

  ExprPtr Make(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // `a, b` without brackets (set statements) becomes a list.
  Result<ExprPtr> ParseTupleOrExpression() {
    TRY_ASSIGN(ExprPtr first, ParseExpression());
    if (!IsOp(",")) return first;
    ExprPtr list = Make(ExprKind::kList, first->line);
    list->children.push_back(std::move(first));
    while (IsOp(",")) {
      Next();
      TRY_ASSIGN(ExprPtr item, ParseExpression());
      list->children.push_back(std::move(item));
    }
    return list;
  }

  Result<ExprPtr> ParseExpression(bool allow_condition = true) {
    if (++depth_ > kMaxParseDepth) return Fail("expression nested deeper than " + std::to_string(kMaxParseDepth));
    Result<ExprPtr> result = ParseConditional(allow_condition);
    --depth_;
    return result;
  }

  Result<ExprPtr> ParseConditional(bool allow_condition) {
    TRY_ASSIGN(ExprPtr value, ParseOr());
    while (allow_condition && IsName("if")) {
      Next();
      ExprPtr e = Make(ExprKind::kCondition, value->line);
      TRY_ASSIGN(ExprPtr condition, ParseOr());
      e->children.push_back(std::move(value));
      e->children.push_back(std::move(condition));
      if (IsName("else")) {
        Next();
        TRY_ASSIGN(ExprPtr otherwise, ParseExpression());
        e->children.push_back(std::move(otherwise));
      } else {
        e->children.push_back(nullptr);
      }
      value = std::move(e);
    }
    return value;
  }

  Result<ExprPtr> Binary(ExprKind kind, std::string op, ExprPtr left, ExprPtr right) {
    ExprPtr e = Make(kind, left->line);
    e->name = std::move(op);
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return e;
  }

  Result<ExprPtr> ParseOr() {
    TRY_ASSIGN(ExprPtr left, ParseAnd());
    while (IsName("or")) {
      Next();
      TRY_ASSIGN(ExprPtr right, ParseAnd());
      TRY_ASSIGN(left, Binary(ExprKind::kOr, "or", std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> ParseAnd() {
    TRY_ASSIGN(ExprPtr left, ParseNot());
    while (IsName("and")) {
      Next();
      TRY_ASSIGN(ExprPtr right, ParseNot());
      TRY_ASSIGN(left, Binary(ExprKind::kAnd, "and", std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> ParseNot() {
    if (IsName("not")) {
      const int line = Next().line;
      if (++depth_ > kMaxParseDepth) return Fail("expression nested too deeply");
      TRY_ASSIGN(ExprPtr operand, ParseNot());
      --depth_;
      ExprPtr e = Make(ExprKind::kNot, line);
      e->children.push_back(std::move(operand));
      return e;
    }
    return ParseCompare();
  }

  Result<ExprPtr> ParseCompare() {
    TRY_ASSIGN(ExprPtr left, ParseMath1());
    while (true) {
      std::string op;
      if (Peek().kind == TokenKind::kOperator &&
          (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" || Peek().text == ">" ||
           Peek().text == "<=" || Peek().text == ">=")) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        Next();
        Next();
        op = "not in";
      } else {
        return left;
      }
      TRY_ASSIGN(ExprPtr right, ParseMath1());
      TRY_ASSIGN(left, Binary(ExprKind::kBinary, op, std::move(left), std::move(right)));
    }
  }

  Result<ExprPtr> ParseMath1() {
    TRY_ASSIGN(ExprPtr left, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      std::string op = Next().text;
      TRY_ASSIGN(ExprPtr right, ParseConcat());
      TRY_ASSIGN(left, Binary(ExprKind::kBinary, op, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> ParseConcat() {
    TRY_ASSIGN(ExprPtr left, ParseMath2());
    while (IsOp("~")) {
      Next();
      TRY_ASSIGN(ExprPtr right, ParseMath2());
      TRY_ASSIGN(left, Binary(ExprKind::kBinary, "~", std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> ParseMath2() {
    TRY_ASSIGN(ExprPtr left, ParsePow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      std::string op = Next().text;
      TRY_ASSIGN(ExprPtr right, ParsePow());
      TRY_ASSIGN(left, Binary(ExprKind::kBinary, op, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> ParsePow() {
    TRY_ASSIGN(ExprPtr left, ParseUnary());
    while (IsOp("**")) {
      Next();
      TRY_ASSIGN(ExprPtr right, ParseUnary());
      TRY_ASSIGN(left, Binary(ExprKind::kBinary, "**", std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> ParseUnary() {
    if (IsOp("-") || IsOp("+")) {
      const Token& t = Next();
      const bool negate = t.text == "-";
      if (++depth_ > kMaxParseDepth) return Fail("expression nested too deeply");
      TRY_ASSIGN(ExprPtr operand, ParseUnary());
      --depth_;
      if (!negate) return operand;
      ExprPtr e = Make(ExprKind::kNegate, t.line);
      e->children.push_back(std::move(operand));
      return e;
    }
    TRY_ASSIGN(ExprPtr primary, ParsePrimary());
    TRY_ASSIGN(primary, ParsePostfix(std::move(primary)));
    return ParseFilterAndTest(std::move(primary));
  }

  Status ParseCallArgs(Expr* e) {
    TRY(ExpectOp("("));
    while (!IsOp(")")) {
      if (Peek().kind == TokenKind::kName && IsOp("=", 1)) {
        std::string key = Next().text;
        Next();
        TRY_ASSIGN(ExprPtr value, ParseExpression());
        e->kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!e->kwargs.empty()) return Fail("positional argument after keyword argument");
        TRY_ASSIGN(ExprPtr value, ParseExpression());
        e->children.push_back(std::move(value));
      }
      if (!IsOp(",")) break;
      Next();
    }
    return ExpectOp(")");
  }

  Result<ExprPtr> ParsePostfix(ExprPtr e) {
    while (true) {
      if (IsOp(".")) {
        Next();
        ExprPtr access;
        if (Peek().kind == TokenKind::kInt) {
          access = Make(ExprKind::kGetItem, e->line);
          access->children.push_back(std::move(e));
          ExprPtr index = Make(ExprKind::kLiteral, access->line);
          index->literal = Value(Next().int_value);
          access->children.push_back(std::move(index));
        } else {
          access = Make(ExprKind::kGetAttr, e->line);
          TRY_ASSIGN(access->name, ExpectName());
          access->children.push_back(std::move(e));
        }
        e = std::move(access);
      } else if (IsOp("[")) {
        Next();
        ExprPtr start, stop, step;
        bool is_slice = false;
        if (!IsOp(":")) {
          TRY_ASSIGN(start, ParseExpression());
        }
        if (IsOp(":")) {
          is_slice = true;
          Next();
          if (!IsOp(":") && !IsOp("]")) {
            TRY_ASSIGN(stop, ParseExpression());
          }
          if (IsOp(":")) {
            Next();
            if (!IsOp("]")) {
              TRY_ASSIGN(step, ParseExpression());
            }
          }
        }
        TRY(ExpectOp("]"));
        ExprPtr access = Make(is_slice ? ExprKind::kSlice : ExprKind::kGetItem, e->line);
        access->children.push_back(std::move(e));
        access->children.push_back(std::move(start));
        if (is_slice) {
          access->children.push_back(std::move(stop));
          access->children.push_back(std::move(step));
        }
        e = std::move(access);
      } else if (IsOp("(")) {
        ExprPtr call = Make(ExprKind::kCall, e->line);
        call->children.push_back(std::move(e));
        TRY(ParseCallArgs(call.get()));
        e = std::move(call);
      } else {
        return e;
      }
    }
  }

  // One or more "| name(args)" applied to `input` (null: the body of a filter/set block).
  Result<ExprPtr> ParseFilterChain(ExprPtr input) {
    while (true) {
      ExprPtr f = Make(ExprKind::kFilter, Peek().line);
      TRY_ASSIGN(f->name, ExpectName());
      while (IsOp(".")) {  // dotted filter names are not used by real templates
        return Unsupported("dotted filter name");
      }
      f->children.push_back(std::move(input));
      if (IsOp("(")) TRY(ParseCallArgs(f.get()));
      input = std::move(f);
      if (!IsOp("|")) return input;
      Next();
    }
  }

  bool StartsPrimary(const Token& t) const {
    if (t.kind == TokenKind::kString || t.kind == TokenKind::kInt || t.kind == TokenKind::kFloat) return true;
    if (t.kind != TokenKind::kName) return false;
    for (const char* keyword : {"and", "or", "else", "if", "in", "is", "not"}) {
      if (t.text == keyword) return false;
    }
    return true;
  }

  Result<ExprPtr> ParseFilterAndTest(ExprPtr e) {
    while (true) {
      if (IsOp("|")) {
        Next();
        TRY_ASSIGN(e, ParseFilterChain(std::move(e)));
      } else if (IsName("is")) {
        Next();
        ExprPtr test = Make(ExprKind::kTest, e->line);
        if (IsName("not")) {
          Next();
          test->negated = true;
        }
        TRY_ASSIGN(test->name, ExpectName());
        test->children.push_back(std::move(e));
        if (IsOp("(")) {
          TRY(ParseCallArgs(test.get()));
        } else if (StartsPrimary(Peek())) {
          TRY_ASSIGN(ExprPtr arg, ParsePrimary());
          TRY_ASSIGN(arg, ParsePostfix(std::move(arg)));
          test->children.push_back(std::move(arg));
        }
        e = std::move(test);
      } else {
        return e;
      }
    }
  }

  Result<ExprPtr> ParsePrimary() {
    const Token& t = Peek();
    const int line = t.line;
    if (t.kind == TokenKind::kString) {
      std::string value;
      while (Peek().kind == TokenKind::kString) value += Next().text;  // "a" "b" concatenates
      ExprPtr e = Make(ExprKind::kLiteral, line);
      e->literal = Value(std::move(value));
      return e;
    }
    if (t.kind == TokenKind::kInt || t.kind == TokenKind::kFloat) {
      ExprPtr e = Make(ExprKind::kLiteral, line);
      e->literal = t.kind == TokenKind::kInt ? Value(t.int_value) : Value(t.float_value);
      Next();
      return e;
    }
    if (t.kind == TokenKind::kName) {
      const std::string name = Next().text;
      ExprPtr e = Make(ExprKind::kLiteral, line);
      if (name == "true" || name == "True") {
        e->literal = Value(true);
      } else if (name == "false" || name == "False") {
        e->literal = Value(false);
      } else if (name == "none" || name == "None") {
        e->literal = Value::None();
      } else {
        e->kind = ExprKind::kName;
        e->name = name;
      }
      return e;
    }
    if (IsOp("(")) {
      Next();
      if (IsOp(")")) {
        Next();
        return Make(ExprKind::kList, line);
      }
      TRY_ASSIGN(ExprPtr first, ParseExpression());
      if (IsOp(")")) {
        Next();
        return first;
      }
      ExprPtr tuple = Make(ExprKind::kList, line);
      tuple->children.push_back(std::move(first));
      while (IsOp(",")) {
        Next();
        if (IsOp(")")) break;
        TRY_ASSIGN(ExprPtr item, ParseExpression());
        tuple->children.push_back(std::move(item));
      }
      TRY(ExpectOp(")"));
      return tuple;
    }
    if (IsOp("[")) {
      Next();
      ExprPtr list = Make(ExprKind::kList, line);
      while (!IsOp("]")) {
        TRY_ASSIGN(ExprPtr item, ParseExpression());
        list->children.push_back(std::move(item));
        if (!IsOp(",")) break;
        Next();
      }
      TRY(ExpectOp("]"));
      return list;
    }
    if (IsOp("{")) {
      Next();
      ExprPtr dict = Make(ExprKind::kDict, line);
      while (!IsOp("}")) {
        TRY_ASSIGN(ExprPtr key, ParseExpression());
        TRY(ExpectOp(":"));
        TRY_ASSIGN(ExprPtr value, ParseExpression());
        dict->children.push_back(std::move(key));
        dict->children.push_back(std::move(value));
        if (!IsOp(",")) break;
        Next();
      }
      TRY(ExpectOp("}"));
      return dict;
    }
    return Fail("unexpected '" + Describe(t) + "' in expression");
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Program>> ParseTemplate(std::string_view source, const LexerOptions& options) {
  TRY_ASSIGN(std::vector<Token> tokens, Lex(source, options));
  return Parser(std::move(tokens)).Run();
}

}  // namespace kiln::tokenizer::jinja
