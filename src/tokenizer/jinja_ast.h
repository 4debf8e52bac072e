// Syntax tree of a parsed chat template (built by jinja_parser.h, run by jinja_interpreter.h).
// Plain structs: an expression or statement kind plus its operands; owned by unique_ptr, and the
// whole tree by a shared Program so that macros can outlive a render call safely.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace kiln::tokenizer::jinja {

enum class ExprKind {
  kLiteral,   // literal
  kName,      // name
  kList,      // children = items
  kDict,      // children = key0, value0, key1, value1, ...
  kGetAttr,   // children[0].name
  kGetItem,   // children[0][children[1]]
  kSlice,     // children[0][children[1]:children[2]:children[3]] (null = omitted)
  kCall,      // children[0](children[1..], kwargs)
  kFilter,    // children[0] | name(children[1..], kwargs); children[0] null in a filter block
  kTest,      // children[0] is [not] name(children[1..])
  kNot,       // not children[0]
  kNegate,    // -children[0]
  kBinary,    // children[0] op children[1]: + - * / // % ** ~ == != < > <= >= in "not in"
  kAnd,       // children[0] and children[1]
  kOr,        // children[0] or children[1]
  kCondition  // children[0] if children[1] else children[2] (null = undefined)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 0;
  Value literal;
  std::string name;  // kName, kGetAttr, kFilter, kTest; the operator of kBinary
  bool negated = false;  // kTest: "is not"
  std::vector<std::unique_ptr<Expr>> children;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
};
using ExprPtr = std::unique_ptr<Expr>;

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

enum class StmtKind {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // branches: (condition, body)...; a final else has a null condition
  kFor,       // {% for targets in expr [if condition] %} body {% else %} else_body
  kSet,       // {% set targets = expr %} or {% set object.attribute = expr %}
  kSetBlock,  // {% set target [| filter] %} body {% endset %}
  kMacro,     // {% macro name(params) %} body
  kFilterBlock,  // {% filter f %} body
  kBreak,
  kContinue,
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 0;
  std::string text;                  // kText; kMacro name
  ExprPtr expr;                      // kOutput, kFor iterable, kSet value
  ExprPtr condition;                 // kFor inline filter
  ExprPtr filter;                    // kSetBlock / kFilterBlock: a kFilter expr with null input
  std::vector<std::string> targets;  // kFor / kSet names
  std::string attribute;             // kSet object.attribute: targets[0] is the object
  std::vector<std::pair<ExprPtr, StmtList>> branches;  // kIf
  StmtList body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro (default may be null)
};

// A parsed template; shared so macros created while rendering can keep it alive.
struct Program {
  StmtList body;
};

struct Macro {
  std::shared_ptr<const Program> program;  // keeps `stmt` alive
  const Stmt* stmt = nullptr;              // the kMacro statement
};

}  // namespace kiln::tokenizer::jinja
