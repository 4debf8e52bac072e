#include "progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace kiln::cli {

TerminalLine::TerminalLine() : enabled_(isatty(STDERR_FILENO) != 0) {}

void TerminalLine::Show(const std::string& text) {
  if (!enabled_) return;
  // Pad over the longer text shown before, so none of it is left at the end of the line.
  const std::string padding(shown_ > text.size() ? shown_ - text.size() : 0, ' ');
  std::fprintf(stderr, "\r%s%s", text.c_str(), padding.c_str());
  std::fflush(stderr);
  shown_ = text.size();
}

void TerminalLine::Clear() {
  if (!enabled_ || shown_ == 0) return;
  std::fprintf(stderr, "\r%s\r", std::string(shown_, ' ').c_str());
  std::fflush(stderr);
  shown_ = 0;
}

std::string PromptProgressText(int64_t done, int64_t total, double tokens_per_second) {
  char text[128];
  const int percent = total > 0 ? static_cast<int>(100 * done / total) : 0;
  int length = std::snprintf(text, sizeof(text), "prompt %lld/%lld tokens (%d%%)", static_cast<long long>(done),
                             static_cast<long long>(total), percent);
  if (tokens_per_second > 0) std::snprintf(text + length, sizeof(text) - length, ", %.0f tok/s", tokens_per_second);
  return text;
}

Result<Generation> GenerateWithProgress(Generator& generator, std::span<const int32_t> prompt,
                                        const GenerateOptions& options, const Interrupts& interrupts) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  const int64_t total = static_cast<int64_t>(prompt.size());
  // The Generator's own choice (generator.h): the suffix past the reusable prefix runs in steps
  // of `chunk`; a suffix of one chunk or less needs no progress.
  const std::vector<int32_t>& cached = generator.cached_tokens();
  const int64_t common = std::min<int64_t>(
      std::mismatch(cached.begin(), cached.end(), prompt.begin(), prompt.end()).first - cached.begin(),
      std::max<int64_t>(0, total - 1));
  const int64_t tmax = generator.session().program().max_tokens;
  const int64_t threshold = options.prefill_chunk_threshold > 0 ? options.prefill_chunk_threshold : tmax;
  int64_t chunk = total - common <= threshold ? tmax : (options.prefill_chunk > 0 ? options.prefill_chunk : tmax);
  chunk = std::clamp<int64_t>(chunk, 1, tmax);

  // The prefix calls prefill and stop (max_new_tokens 0): nothing sampled, streamed or kept.
  GenerateOptions prefix_options;
  prefix_options.sampling = options.sampling;
  prefix_options.prefill_chunk = chunk;
  prefix_options.prefill_chunk_threshold = chunk;
  prefix_options.max_new_tokens = 0;
  prefix_options.cancel = options.cancel;

  TerminalLine line;
  Generation generation;
  int64_t reused = -1;  // from the first call: what the cache held before this prompt
  for (int64_t end = common + chunk; end < total; end += chunk) {
    if (end == common + chunk) line.Show(PromptProgressText(common, total, 0));
    TRY_ASSIGN(GenerationResult part, generator.Generate(prompt.first(static_cast<size_t>(end)), prefix_options));
    if (reused < 0) reused = part.reused_tokens;
    const int64_t done = static_cast<int64_t>(cached.size());
    if (part.stop_reason == StopReason::kCancelled) {
      line.Clear();
      generation.result.stop_reason = StopReason::kCancelled;
      generation.result.prompt_tokens = total;
      generation.result.reused_tokens = reused;
      generation.result.prefill_seconds = seconds();
      generation.prompt_processed = done;
      generation.interrupted = interrupts.interrupted.load();
      return generation;
    }
    line.Show(PromptProgressText(done, total, static_cast<double>(done - reused) / std::max(seconds(), 1e-9)));
  }

  // The last chunk and the generation; the line goes when the first token is about to come.
  const double before = seconds();
  bool prefilled = false;
  GenerateOptions last_options = options;
  last_options.on_prefilled = [&] {
    prefilled = true;
    line.Clear();
    if (options.on_prefilled) options.on_prefilled();
  };
  Result<GenerationResult> last = generator.Generate(prompt, last_options);
  line.Clear();
  if (!last.has_value()) return last.error();
  generation.result = std::move(*last);
  GenerationResult& result = generation.result;
  if (reused >= 0) {
    result.reused_tokens = reused;
    result.prefill_seconds += before;
    if (!result.tokens.empty()) result.first_token_seconds += before;
  }
  // Stopped during the last chunk's prefill: the cache holds the prompt's processed prefix.
  generation.prompt_processed = prefilled ? total : static_cast<int64_t>(cached.size());
  generation.interrupted = result.stop_reason == StopReason::kCancelled && interrupts.interrupted.load();
  return generation;
}

}  // namespace kiln::cli
