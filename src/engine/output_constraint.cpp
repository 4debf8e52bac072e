#include "engine/output_constraint.h"

#include <algorithm>
#include <limits>

#include "constraint/constraint.h"
#include "constraint/matcher.h"

namespace kiln {

OutputConstraint::OutputConstraint(const ConstraintSpec& spec)
    : matcher_(std::make_unique<constraint::Matcher>(spec.grammar, spec.vocabulary)), mask_(spec.vocabulary->mask_words()) {}

OutputConstraint::~OutputConstraint() = default;

namespace {

Error NothingAllowed() {
  return Error(ErrorCode::kInvalidArgument, "the output constraint allows no further token (the grammar cannot be completed)");
}

}  // namespace

Status OutputConstraint::Mask(std::span<float> logits) {
  TRY(matcher_->FillMask(mask_));
  bool any = false;
  for (size_t t = 0; t < logits.size(); ++t) {
    const size_t word = t / 64;
    const bool allowed = word < mask_.size() && ((mask_[word] >> (t % 64)) & 1u);
    if (!allowed) logits[t] = -std::numeric_limits<float>::infinity();
    any |= allowed;
  }
  if (!any) return NothingAllowed();
  return Status::Ok();
}

Status OutputConstraint::FillAllowed(std::span<uint64_t> allowed) {
  TRY(matcher_->FillMask(mask_));
  const size_t common = std::min(allowed.size(), mask_.size());
  std::copy_n(mask_.begin(), common, allowed.begin());
  std::fill(allowed.begin() + static_cast<std::ptrdiff_t>(common), allowed.end(), 0);
  if (std::all_of(allowed.begin(), allowed.end(), [](uint64_t word) { return word == 0; })) return NothingAllowed();
  return Status::Ok();
}

Status OutputConstraint::Accept(int32_t token) { return matcher_->Accept(token); }

bool OutputConstraint::MustEnd() const { return matcher_->MustEnd(); }

bool OutputConstraint::Terminated() const { return matcher_->IsTerminated(); }

Result<std::shared_ptr<const constraint::Grammar>> CompileConstraint(const ConstraintSource& source) {
  const int given = !source.json_schema.empty() + !source.regex.empty() + !source.gbnf.empty() + source.any_json;
  if (given > 1) return Error(ErrorCode::kInvalidArgument, "give at most one of a JSON schema, a regex, a grammar and JSON mode");
  auto named = [](const char* what, Result<std::shared_ptr<const constraint::Grammar>> compiled) -> Result<std::shared_ptr<const constraint::Grammar>> {
    if (!compiled) return compiled.error().WithContext(what);
    return compiled;
  };
  if (!source.json_schema.empty()) return named("json schema", constraint::CompileJsonSchema(source.json_schema));
  if (!source.regex.empty()) return named("regex", constraint::CompileRegex(source.regex));
  if (!source.gbnf.empty()) return named("grammar", constraint::CompileGbnf(source.gbnf));
  if (source.any_json) return constraint::CompileAnyJson();
  return std::shared_ptr<const constraint::Grammar>();
}

}  // namespace kiln
