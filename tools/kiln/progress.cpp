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
  TerminalLine line;
  GenerateOptions with_progress = options;
  with_progress.on_prefill_progress = [&](int64_t done, int64_t total, int64_t reused) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    line.Show(PromptProgressText(done, total, seconds > 0 ? static_cast<double>(done - reused) / seconds : 0));
    if (options.on_prefill_progress) options.on_prefill_progress(done, total, reused);
  };
  with_progress.on_prefilled = [&] {
    line.Clear();  // the first token is about to come
    if (options.on_prefilled) options.on_prefilled();
  };
  Result<GenerationResult> result = generator.Generate(prompt, with_progress);
  line.Clear();
  if (!result.has_value()) return result.error();
  Generation generation;
  generation.result = std::move(*result);
  generation.prompt_processed = generation.result.prefilled_tokens;
  generation.interrupted = generation.result.stop_reason == StopReason::kCancelled && interrupts.interrupted.load();
  return generation;
}

}  // namespace kiln::cli
