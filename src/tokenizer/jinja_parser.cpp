#include "tokenizer/jinja_parser.h"

#include "tokenizer/jinja_parser_impl.h"

namespace kiln::tokenizer::jinja {
namespace internal {

Result<std::shared_ptr<const Program>> Parser::Run() {
  auto program = std::make_shared<Program>();
  std::string end_tag;
  TRY(ParseBody(&program->body, {}, &end_tag));
  return std::shared_ptr<const Program>(std::move(program));
}

Status Parser::ParseBody(StmtList* out, std::initializer_list<const char*> ends, std::string* end_tag) {
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

Status Parser::ParseStatement(const std::string& keyword, StmtList* out) {
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

}  // namespace internal

Result<std::shared_ptr<const Program>> ParseTemplate(std::string_view source, const LexerOptions& options) {
  TRY_ASSIGN(std::vector<Token> tokens, Lex(source, options));
  return internal::Parser(std::move(tokens)).Run();
}

}  // namespace kiln::tokenizer::jinja
