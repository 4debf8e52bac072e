// Expression half of the chat-template parser (Jinja2 precedence, lowest first: conditional,
// or, and, not, comparisons / in, + -, ~, * / // %, **, unary -, then a primary with postfix
// access, calls, filters and tests).
#include "tokenizer/jinja_parser_impl.h"

namespace kiln::tokenizer::jinja::internal {

ExprPtr Parser::Make(ExprKind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

Result<ExprPtr> Parser::ParseTupleOrExpression() {
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

Result<ExprPtr> Parser::ParseExpression(bool allow_condition) {
  if (++depth_ > kMaxParseDepth) return Fail("expression nested deeper than " + std::to_string(kMaxParseDepth));
  Result<ExprPtr> result = ParseConditional(allow_condition);
  --depth_;
  return result;
}

Result<ExprPtr> Parser::ParseConditional(bool allow_condition) {
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

Result<ExprPtr> Parser::Binary(ExprKind kind, std::string op, ExprPtr left, ExprPtr right) {
  ExprPtr e = Make(kind, left->line);
  e->name = std::move(op);
  e->children.push_back(std::move(left));
  e->children.push_back(std::move(right));
  return e;
}

Result<ExprPtr> Parser::ParseOr() {
  TRY_ASSIGN(ExprPtr left, ParseAnd());
  while (IsName("or")) {
    Next();
    TRY_ASSIGN(ExprPtr right, ParseAnd());
    TRY_ASSIGN(left, Binary(ExprKind::kOr, "or", std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> Parser::ParseAnd() {
  TRY_ASSIGN(ExprPtr left, ParseNot());
  while (IsName("and")) {
    Next();
    TRY_ASSIGN(ExprPtr right, ParseNot());
    TRY_ASSIGN(left, Binary(ExprKind::kAnd, "and", std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> Parser::ParseNot() {
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

Result<ExprPtr> Parser::ParseCompare() {
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

Result<ExprPtr> Parser::ParseMath1() {
  TRY_ASSIGN(ExprPtr left, ParseConcat());
  while (IsOp("+") || IsOp("-")) {
    std::string op = Next().text;
    TRY_ASSIGN(ExprPtr right, ParseConcat());
    TRY_ASSIGN(left, Binary(ExprKind::kBinary, op, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> Parser::ParseConcat() {
  TRY_ASSIGN(ExprPtr left, ParseMath2());
  while (IsOp("~")) {
    Next();
    TRY_ASSIGN(ExprPtr right, ParseMath2());
    TRY_ASSIGN(left, Binary(ExprKind::kBinary, "~", std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> Parser::ParseMath2() {
  TRY_ASSIGN(ExprPtr left, ParsePow());
  while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
    std::string op = Next().text;
    TRY_ASSIGN(ExprPtr right, ParsePow());
    TRY_ASSIGN(left, Binary(ExprKind::kBinary, op, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> Parser::ParsePow() {
  TRY_ASSIGN(ExprPtr left, ParseUnary());
  while (IsOp("**")) {
    Next();
    TRY_ASSIGN(ExprPtr right, ParseUnary());
    TRY_ASSIGN(left, Binary(ExprKind::kBinary, "**", std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> Parser::ParseUnary() {
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

Status Parser::ParseCallArgs(Expr* e) {
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

Result<ExprPtr> Parser::ParsePostfix(ExprPtr e) {
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

Result<ExprPtr> Parser::ParseFilterChain(ExprPtr input) {
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

bool Parser::StartsPrimary(const Token& t) const {
  if (t.kind == TokenKind::kString || t.kind == TokenKind::kInt || t.kind == TokenKind::kFloat) return true;
  if (t.kind != TokenKind::kName) return false;
  for (const char* keyword : {"and", "or", "else", "if", "in", "is", "not"}) {
    if (t.text == keyword) return false;
  }
  return true;
}

Result<ExprPtr> Parser::ParseFilterAndTest(ExprPtr e) {
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

Result<ExprPtr> Parser::ParsePrimary() {
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

}  // namespace kiln::tokenizer::jinja::internal
