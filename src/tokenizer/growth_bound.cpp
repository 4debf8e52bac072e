#include "tokenizer/growth_bound.h"

#include <limits>

namespace kiln::tokenizer {
namespace {

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();

uint64_t SaturatingMul(uint64_t a, uint64_t b) {
  if (a != 0 && b > kSaturated / a) return kSaturated;
  return a * b;
}

uint64_t SaturatingAdd(uint64_t a, uint64_t b) { return b > kSaturated - a ? kSaturated : a + b; }

std::string Fold(uint64_t factor) { return factor == kSaturated ? "unboundedly" : std::to_string(factor) + "-fold"; }

std::string Bytes(uint64_t n) { return n == kSaturated ? "more than 2^64" : std::to_string(n); }

bool Exceeds(const GrowthBound& b) {
  return b.factor > kMaxStageGrowthFactor || b.constant_bytes > kMaxStageGrowthConstantBytes;
}

}  // namespace

GrowthBound GrowthBound::Then(const GrowthBound& next) const {
  return {SaturatingMul(factor, next.factor),
          SaturatingAdd(SaturatingMul(constant_bytes, next.factor), next.constant_bytes)};
}

uint64_t GrowthBound::MaxOutputBytes(uint64_t input_bytes) const {
  return SaturatingAdd(SaturatingMul(factor, input_bytes), constant_bytes);
}

GrowthBound ComposeGrowth(const std::vector<StepGrowth>& steps) {
  GrowthBound total;
  for (const StepGrowth& s : steps) total = total.Then(s.bound);
  return total;
}

Status CheckStageGrowth(std::string_view stage, const std::vector<StepGrowth>& steps) {
  const GrowthBound total = ComposeGrowth(steps);
  if (!Exceeds(total)) return Status::Ok();
  // Name the culprit: a step that is too much on its own, else the chain of growing steps.
  std::string rules;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (Exceeds(steps[i].bound)) {
      rules = "step " + std::to_string(i + 1) + " of " + std::to_string(steps.size()) + ", " + steps[i].rule;
      break;
    }
  }
  if (rules.empty()) {
    size_t growing = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i].bound.factor <= 1 && steps[i].bound.constant_bytes == 0) continue;
      rules += (growing++ == 0 ? "" : ", then ") + std::string("step ") + std::to_string(i + 1) + " " + steps[i].rule;
    }
    rules = "the " + std::to_string(steps.size()) + " steps together: " + rules;
  }
  return Error(ErrorCode::kMalformed,
               std::string(stage) + " can grow text " + Fold(total.factor) +
                   (total.constant_bytes > 0 ? " plus " + Bytes(total.constant_bytes) + " bytes" : "") +
                   " (1000 input bytes could become " + Bytes(total.MaxOutputBytes(1000)) + "), through " +
                   rules + "; a tokenizer stage may grow its input at most " +
                   std::to_string(kMaxStageGrowthFactor) + "-fold plus " +
                   std::to_string(kMaxStageGrowthConstantBytes) + " bytes");
}

std::string QuoteRuleText(std::string_view text) {
  constexpr size_t kMaxQuoted = 16;
  if (text.size() > kMaxQuoted) return "a " + std::to_string(text.size()) + "-byte string";
  std::string out = "\"";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace kiln::tokenizer
