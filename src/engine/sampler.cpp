#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace kiln {

namespace {

std::string Number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

// Descending by value, ascending by id: a total order, so results never depend on the sort.
bool Before(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace

Status SamplingOptions::Validate() const {
  // Written so that NaN fails every check.
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return Error(ErrorCode::kInvalidArgument, "temperature must be >= 0 (0 = greedy), got " + Number(temperature));
  }
  if (top_k < 0) return Error(ErrorCode::kInvalidArgument, "top-k must be >= 0 (0 = off), got " + std::to_string(top_k));
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return Error(ErrorCode::kInvalidArgument, "top-p must be in (0, 1], got " + Number(top_p));
  }
  if (!(min_p >= 0.0f && min_p < 1.0f)) {
    return Error(ErrorCode::kInvalidArgument, "min-p must be in [0, 1), got " + Number(min_p));
  }
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return Error(ErrorCode::kInvalidArgument, "repetition penalty must be > 0 (1 = off), got " + Number(repetition_penalty));
  }
  for (const auto& [name, value] : {std::pair{"presence penalty", presence_penalty}, std::pair{"frequency penalty", frequency_penalty}}) {
    if (!(value >= -2.0f && value <= 2.0f)) {
      return Error(ErrorCode::kInvalidArgument, std::string(name) + " must be in [-2, 2] (0 = off), got " + Number(value));
    }
  }
  if (repetition_window < 0) {
    return Error(ErrorCode::kInvalidArgument,
                 "repetition window must be >= 0 (0 = whole sequence), got " + std::to_string(repetition_window));
  }
  return Status::Ok();
}

int32_t ArgMax(std::span<const float> values) {
  if (values.empty()) return -1;
  size_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    if (values[i] > values[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), engine_(options.seed) {}

double Sampler::NextUniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

void Sampler::ApplyRepetitionPenalty(std::span<float> logits, std::span<const int32_t> history) {
  if (options_.repetition_penalty == 1.0f || history.empty()) return;
  size_t window = history.size();
  if (options_.repetition_window > 0) window = std::min(window, static_cast<size_t>(options_.repetition_window));
  // Each distinct token is penalized once, however often it occurs (as in transformers).
  const std::span<const int32_t> recent = history.subspan(history.size() - window);
  penalized_.assign(recent.begin(), recent.end());
  std::sort(penalized_.begin(), penalized_.end());
  penalized_.erase(std::unique(penalized_.begin(), penalized_.end()), penalized_.end());
  for (int32_t id : penalized_) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
    float& logit = logits[static_cast<size_t>(id)];
    logit = logit > 0.0f ? logit / options_.repetition_penalty : logit * options_.repetition_penalty;
  }
}

void Sampler::ApplyPresenceAndFrequencyPenalties(std::span<float> logits, std::span<const int32_t> generated) {
  if ((options_.presence_penalty == 0.0f && options_.frequency_penalty == 0.0f) || generated.empty()) return;
  // Sorted, equal ids are adjacent: each run is one token and its count.
  penalized_.assign(generated.begin(), generated.end());
  std::sort(penalized_.begin(), penalized_.end());
  for (size_t run = 0; run < penalized_.size();) {
    const int32_t id = penalized_[run];
    size_t end = run;
    while (end < penalized_.size() && penalized_[end] == id) ++end;
    const float count = static_cast<float>(end - run);
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) {
      logits[static_cast<size_t>(id)] -= count * options_.frequency_penalty + options_.presence_penalty;
    }
    run = end;
  }
}

void Sampler::ApplyPenalties(std::span<float> logits, std::span<const int32_t> history, size_t prompt_tokens) {
  ApplyRepetitionPenalty(logits, history);
  ApplyPresenceAndFrequencyPenalties(logits, history.subspan(std::min(prompt_tokens, history.size())));
}

void Sampler::Filter(std::span<const float> logits) {
  const size_t vocab = logits.size();
  const float inverse_temperature = 1.0f / options_.temperature;
  scratch_.resize(vocab);
  float max_scaled = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < vocab; ++i) {
    scratch_[i] = {logits[i] * inverse_temperature, static_cast<int32_t>(i)};
    max_scaled = std::max(max_scaled, scratch_[i].first);
  }
  // Candidates are taken most likely first; the top-k set (the whole vocabulary without top-k)
  // is the distribution top-p measures its mass in, as transformers' warpers chain.
  const size_t limit = options_.top_k > 0 ? std::min(vocab, static_cast<size_t>(options_.top_k)) : vocab;
  size_t sorted = std::min(limit, size_t{64});
  std::partial_sort(scratch_.begin(), scratch_.begin() + sorted, scratch_.end(), Before);
  if (options_.top_k > 0 && sorted < limit) {
    std::partial_sort(scratch_.begin() + sorted, scratch_.begin() + limit, scratch_.end(), Before);
    sorted = limit;
  }
  double total = 0.0;
  for (size_t i = 0; i < limit; ++i) total += std::exp(static_cast<double>(scratch_[i].first - max_scaled));
  // Top-p: the shortest most-likely-first prefix whose mass reaches top_p. Without top-p every
  // candidate stays and the order does not matter: no sort past the first 64.
  size_t keep = limit;
  if (options_.top_p < 1.0f) {
    keep = 0;
    double mass = 0.0;
    const double target = static_cast<double>(options_.top_p) * total;
    while (keep < limit && (keep == 0 || mass < target)) {
      if (keep == sorted) {  // the nucleus needs more sorted candidates
        const size_t wider = std::min(limit, sorted * 4);
        std::partial_sort(scratch_.begin() + sorted, scratch_.begin() + wider, scratch_.end(), Before);
        sorted = wider;
      }
      mass += std::exp(static_cast<double>(scratch_[keep].first - max_scaled));
      ++keep;
    }
  }
  // Min-p: relative to the most likely token, whose weight is exp(0) = 1.
  const double threshold = static_cast<double>(options_.min_p);
  candidates_.clear();
  double kept_mass = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    const double weight = std::exp(static_cast<double>(scratch_[i].first - max_scaled));
    if (weight < threshold) continue;
    candidates_.push_back({scratch_[i].second, static_cast<float>(weight)});
    kept_mass += weight;
  }
  for (Candidate& candidate : candidates_) {
    candidate.probability = static_cast<float>(candidate.probability / kept_mass);
  }
}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> history, size_t prompt_tokens) {
  ApplyPenalties(logits, history, prompt_tokens);
  if (options_.greedy()) return ArgMax(logits);
  Filter(logits);
  // Inverse CDF over the candidates; the last one absorbs rounding.
  const double u = NextUniform();
  double cumulative = 0.0;
  for (const Candidate& candidate : candidates_) {
    cumulative += candidate.probability;
    if (u < cumulative) return candidate.id;
  }
  return candidates_.back().id;
}

std::vector<Candidate> Sampler::Distribution(std::span<float> logits, std::span<const int32_t> history,
                                             size_t prompt_tokens) {
  ApplyPenalties(logits, history, prompt_tokens);
  if (options_.greedy()) return {Candidate{ArgMax(logits), 1.0f}};
  Filter(logits);
  std::vector<Candidate> result = candidates_;
  std::stable_sort(result.begin(), result.end(),
                   [](const Candidate& a, const Candidate& b) { return a.probability > b.probability; });
  return result;
}

std::vector<TokenLogprob> TopLogprobs(std::span<const float> logits, int64_t count) {
  if (logits.empty() || count <= 0) return {};
  const float max_logit = logits[static_cast<size_t>(ArgMax(logits))];
  double sum = 0.0;
  for (float logit : logits) sum += std::exp(static_cast<double>(logit - max_logit));
  const float log_normalizer = max_logit + static_cast<float>(std::log(sum));
  std::vector<std::pair<float, int32_t>> order(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) order[i] = {logits[i], static_cast<int32_t>(i)};
  const size_t n = std::min(order.size(), static_cast<size_t>(count));
  std::partial_sort(order.begin(), order.begin() + n, order.end(), Before);
  std::vector<TokenLogprob> result(n);
  for (size_t i = 0; i < n; ++i) result[i] = {order[i].second, order[i].first - log_normalizer};
  return result;
}

float Logprob(std::span<const float> logits, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= logits.size()) return -std::numeric_limits<float>::infinity();
  const float max_logit = logits[static_cast<size_t>(ArgMax(logits))];
  double sum = 0.0;
  for (float logit : logits) sum += std::exp(static_cast<double>(logit - max_logit));
  return logits[static_cast<size_t>(id)] - max_logit - static_cast<float>(std::log(sum));
}

}  // namespace kiln
