#include "engine/speculative.h"

#include <algorithm>

namespace kiln {

const char* SpeculativeTypeName(SpeculativeType type) {
  switch (type) {
    case SpeculativeType::kNone: return "none";
    case SpeculativeType::kNgram: return "ngram";
  }
  return "?";
}

Result<SpeculativeType> ParseSpeculativeType(const std::string& name) {
  if (name == "none") return SpeculativeType::kNone;
  if (name == "ngram") return SpeculativeType::kNgram;
  if (name == "mtp" || name == "draft") {
    return Error(ErrorCode::kUnsupported, "speculative type '" + name + "' is not available yet; use ngram (prompt lookup)");
  }
  return Error(ErrorCode::kInvalidArgument, "unknown speculative type '" + name + "' (expected ngram or none)");
}

Status SpeculativeOptions::Validate() const {
  if (draft_max < 0 || draft_max > 64) {
    return Error(ErrorCode::kInvalidArgument, "draft max must be in [0, 64], got " + std::to_string(draft_max));
  }
  if (ngram_min < 1 || ngram_max < ngram_min || ngram_max > 64) {
    return Error(ErrorCode::kInvalidArgument, "n-gram sizes must satisfy 1 <= min <= max <= 64, got min " + std::to_string(ngram_min) +
                                                  " and max " + std::to_string(ngram_max));
  }
  return Status::Ok();
}

int64_t DraftByPromptLookup(std::span<const int32_t> history, const SpeculativeOptions& options, int64_t max,
                            std::vector<int32_t>& drafts) {
  const int64_t length = static_cast<int64_t>(history.size());
  if (max <= 0) return 0;
  for (int64_t n = std::min<int64_t>(options.ngram_max, length - 1); n >= options.ngram_min; --n) {
    const auto suffix = history.subspan(static_cast<size_t>(length - n));
    // Most recent earlier occurrence: it starts at most at length - n - 1, so that at least one
    // token follows it.
    for (int64_t start = length - n - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), history.begin() + start)) continue;
      const int64_t from = start + n;
      const int64_t count = std::min(max, length - from);
      drafts.insert(drafts.end(), history.begin() + from, history.begin() + from + count);
      return count;
    }
  }
  return 0;
}

}  // namespace kiln
