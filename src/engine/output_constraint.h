// An output constraint applied where sampling happens (docs/constraints.md): before each draw the
// tokens the grammar does not allow next get -inf logits, after it the token advances the grammar.
// Works with every sampler setting (the filters only ever see allowed tokens) and per sequence
// (the Generator's one, each scheduler request's own). Where sampling happens on the device,
// FillAllowed gives the same set as a bitset for the backend to apply there (runtime/backend.h).
//
//   TRY_ASSIGN(auto grammar, constraint::CompileJsonSchema(schema));
//   ConstraintSpec spec{grammar, vocabulary};         // vocabulary: once per model
//   OutputConstraint constraint(spec);
//   TRY(constraint.Mask(logits)); id = sampler.Sample(logits, history); TRY(constraint.Accept(id));
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace kiln {

namespace constraint {
struct Grammar;
class TokenVocabulary;
class Matcher;
}  // namespace constraint

struct ConstraintSpec {
  std::shared_ptr<const constraint::Grammar> grammar;
  std::shared_ptr<const constraint::TokenVocabulary> vocabulary;
  explicit operator bool() const { return grammar && vocabulary; }
};

class OutputConstraint {
 public:
  explicit OutputConstraint(const ConstraintSpec& spec);
  ~OutputConstraint();

  // Sets every disallowed token's logit to -inf (ids past the tokenizer's vocabulary too).
  // kInvalidArgument when the grammar allows nothing more (it cannot be completed).
  Status Mask(std::span<float> logits);
  // The same set as a bitset: bit t of allowed[t / 64] is set when token t may come next. Words
  // past the tokenizer's vocabulary are cleared (a wider logit row's extra ids are never allowed).
  // kInvalidArgument as Mask.
  Status FillAllowed(std::span<uint64_t> allowed);
  // Advances past the sampled token (it was allowed by the last Mask).
  Status Accept(int32_t token);
  // The output so far is complete and nothing may follow: only end-of-sequence remains.
  bool MustEnd() const;
  // An end-of-sequence token was accepted: the output is complete.
  bool Terminated() const;

 private:
  std::unique_ptr<constraint::Matcher> matcher_;
  std::vector<uint64_t> mask_;
};

// The constraint named by a front end's options, compiled: exactly one of a JSON Schema (its
// text), a regular expression, a GBNF grammar, or `any_json` (any JSON object). An empty spec when
// none is given. kInvalidArgument naming the flag for a malformed one, or when several are given.
struct ConstraintSource {
  std::string json_schema, regex, gbnf;
  bool any_json = false;
  bool empty() const { return json_schema.empty() && regex.empty() && gbnf.empty() && !any_json; }
};
Result<std::shared_ptr<const constraint::Grammar>> CompileConstraint(const ConstraintSource& source);

}  // namespace kiln
