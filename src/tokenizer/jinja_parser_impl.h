// Internal to the chat-template parser: the recursive-descent Parser class shared by
// jinja_parser.cpp (statements) and jinja_expression_parser.cpp (expressions). Not a public API.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja_parser.h"

namespace kiln::tokenizer::jinja::internal {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<std::shared_ptr<const Program>> Run();

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
  Status ParseBody(StmtList* out, std::initializer_list<const char*> ends, std::string* end_tag);
  Status ParseStatement(const std::string& keyword, StmtList* out);
  ExprPtr Make(ExprKind kind, int line);
  // `a, b` without brackets (set statements) becomes a list.
  Result<ExprPtr> ParseTupleOrExpression();
  Result<ExprPtr> ParseExpression(bool allow_condition = true);
  Result<ExprPtr> ParseConditional(bool allow_condition);
  Result<ExprPtr> Binary(ExprKind kind, std::string op, ExprPtr left, ExprPtr right);
  Result<ExprPtr> ParseOr();
  Result<ExprPtr> ParseAnd();
  Result<ExprPtr> ParseNot();
  Result<ExprPtr> ParseCompare();
  Result<ExprPtr> ParseMath1();
  Result<ExprPtr> ParseConcat();
  Result<ExprPtr> ParseMath2();
  Result<ExprPtr> ParsePow();
  Result<ExprPtr> ParseUnary();
  Status ParseCallArgs(Expr* e);
  Result<ExprPtr> ParsePostfix(ExprPtr e);
  // One or more "| name(args)" applied to `input` (null: the body of a filter/set block).
  Result<ExprPtr> ParseFilterChain(ExprPtr input);
  bool StartsPrimary(const Token& t) const;
  Result<ExprPtr> ParseFilterAndTest(ExprPtr e);
  Result<ExprPtr> ParsePrimary();

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace kiln::tokenizer::jinja::internal
