#include "engine/speculative.h"

#include <algorithm>

namespace kiln {

const char* SpeculativeTypeName(SpeculativeType type) {
  switch (type) {
    case SpeculativeType::kNone: return "none";
    case SpeculativeType::kNgram: return "ngram";
    case SpeculativeType::kDraft: return "draft";
    case SpeculativeType::kMtp: return "mtp";
  }
  return "?";
}

Result<SpeculativeType> ParseSpeculativeType(const std::string& name) {
  if (name == "none") return SpeculativeType::kNone;
  if (name == "ngram") return SpeculativeType::kNgram;
  if (name == "draft") return SpeculativeType::kDraft;
  if (name == "mtp") return SpeculativeType::kMtp;
  return Error(ErrorCode::kInvalidArgument, "unknown speculative type '" + name + "' (expected mtp, ngram, draft or none)");
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

int NextDraftLimit(const SpeculativeOptions& options, int limit, int64_t drafted, int64_t accepted) {
  if (!options.adaptive || drafted == 0) return limit;
  if (accepted == drafted) return std::min(limit + 2, options.draft_max);
  return std::max(limit - 1, 1);
}

Result<int64_t> DraftTokens(std::span<const int32_t> history, const SpeculativeOptions& options, int64_t max,
                            std::vector<int32_t>& drafts) {
  if (max <= 0) return int64_t{0};
  switch (options.type) {
    case SpeculativeType::kNone: return int64_t{0};
    case SpeculativeType::kNgram: return DraftByPromptLookup(history, options, max, drafts);
    case SpeculativeType::kDraft:
      if (options.drafter == nullptr) {
        return Error(ErrorCode::kInvalidArgument, "speculative type draft needs a draft model (--draft MODEL)");
      }
      return options.drafter->Draft(history, max, drafts);
    case SpeculativeType::kMtp:
      // It continues from the target's hidden state, which only the caller holds (mtp_draft.h).
      return Error(ErrorCode::kInternal, "MTP drafts come from DraftWithMtp, not from the token history");
  }
  return int64_t{0};
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
