// The constraint engine's one internal representation: a context-free grammar over bytes.
//
//   GrammarSpec spec;                                     // what a front end produces
//   spec.rules.push_back({"root", Seq({Lit("a"), Rep(Ref("digit"), 1, 3)})});
//   spec.rules.push_back({"digit", Class({{'0', '9'}})});
//   TRY_ASSIGN(std::shared_ptr<const Grammar> g, CompileGrammar(spec, "root"));
//
// Front ends (gbnf, regex, JSON Schema; see constraint.h) parse their input into GrammarSpec, a
// set of named rules whose bodies are Expr trees (sequence, alternation, literal bytes, code
// point classes, rule references, bounded or unbounded repetition). CompileGrammar lowers them
// into Grammar: flat rules whose alternatives are sequences of byte classes and rule references.
// Code point classes become UTF-8 byte sequences, so matching is over bytes and a token that
// spans several grammar symbols (or ends inside a multi-byte character) is handled exactly.
// Repetition is desugared: x* into a right-recursive rule, x{m,n} into m copies followed by a
// chain of n-m nested optional rules.
//
// Limits, checked here so a hostile grammar is an error, never a blow-up: repetition bounds at
// most kMaxRepetition, the lowered grammar at most kMaxElements elements. Left recursion (a rule
// that can reach itself without consuming a byte) is refused, as llama.cpp does: the recognizer
// (recognizer.h) is a pushdown automaton and needs it gone to terminate.
//
// Grammar is immutable after CompileGrammar and safe to share between threads and sequences.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace kiln::constraint {

inline constexpr int64_t kMaxRepetition = 10000;
inline constexpr size_t kMaxElements = size_t{1} << 21;
inline constexpr int kMaxNestingDepth = 200;  // parser recursion bound for all front ends
inline constexpr int kMaxStackedQuantifiers = 8;  // x*+?... on one item

struct CodepointRange {
  uint32_t first = 0, last = 0;  // inclusive
};

struct Expr {
  enum class Kind { kSequence, kAlternation, kLiteral, kCharClass, kRuleRef, kRepeat };
  Kind kind = Kind::kSequence;
  std::vector<Expr> children;          // sequence / alternation items; repeat: exactly one
  std::string text;                    // literal: raw bytes; rule ref: rule name
  std::vector<CodepointRange> ranges;  // char class (code points, any order, may overlap)
  bool negated = false;                // char class: everything in [0, 0x10FFFF] except ranges
  int64_t min = 0, max = -1;           // repeat: max -1 = unbounded
};

// Expr builders (the front ends read like the grammars they emit).
Expr Seq(std::vector<Expr> items);
Expr Alt(std::vector<Expr> items);
Expr Lit(std::string bytes);
Expr Class(std::vector<CodepointRange> ranges, bool negated = false);
Expr Ref(std::string rule_name);
Expr Rep(Expr item, int64_t min, int64_t max);
inline Expr Opt(Expr item) { return Rep(std::move(item), 0, 1); }
inline Expr Star(Expr item) { return Rep(std::move(item), 0, -1); }

struct NamedRule {
  std::string name;
  Expr body;
};

struct GrammarSpec {
  std::vector<NamedRule> rules;  // names unique
};

// The lowered grammar. Positions index `elements`; an alternative is a run of elements ending
// in a kEnd element. A rule's alternatives start at rule_starts[rule].
struct Grammar {
  enum class ElementKind : uint8_t { kEnd, kBytes, kRule };
  struct Element {
    ElementKind kind = ElementKind::kEnd;
    uint32_t index = 0;  // kBytes: byte_classes index; kRule: rule id; kEnd: owning rule id
  };
  using ByteClass = std::array<uint64_t, 4>;  // bit b set = byte b allowed

  std::vector<Element> elements;
  std::vector<ByteClass> byte_classes;
  std::vector<std::vector<uint32_t>> rule_starts;  // per rule: start position of each alternative
  std::vector<std::string> rule_names;
  uint32_t root = 0;

  static bool Contains(const ByteClass& c, uint8_t byte) { return (c[byte >> 6] >> (byte & 63)) & 1; }
};

// kInvalidArgument for undefined rules, left recursion, or limits exceeded (message names the
// rule). `root` must name a rule of `spec`.
Result<std::shared_ptr<const Grammar>> CompileGrammar(const GrammarSpec& spec,
                                                      const std::string& root);

// Whole-string match of `bytes` against the grammar (a reference check for tests and tools;
// the decoding path uses Matcher).
bool GrammarMatches(const Grammar& grammar, std::string_view bytes);

}  // namespace kiln::constraint
