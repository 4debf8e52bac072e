// Progress on a terminal: a line on stderr rewritten in place while a long prompt is prefilled
// (`kiln run`, `kiln chat`) or a benchmark runs (`kiln bench`), cleared before the output it
// precedes. Nothing is printed when stderr is not a terminal, so pipes and logs stay clean.
//
//   TerminalLine line;                       // decides once: isatty(stderr)
//   line.Show("prompt 4096/16384 tokens (25%), 812 tok/s");
//   line.Clear();                            // before the first generated token
//
//   Interrupts& interrupts = InstallInterruptHandler();
//   TRY_ASSIGN(Generation generation, GenerateWithProgress(generator, prompt, options, interrupts));
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "engine/generator.h"
#include "generation_flags.h"

namespace kiln::cli {

// One status line on stderr, rewritten with '\r' and blanked by Clear(). Inert when stderr is
// not a terminal. Not thread-safe.
class TerminalLine {
 public:
  TerminalLine();
  ~TerminalLine() { Clear(); }
  TerminalLine(const TerminalLine&) = delete;
  TerminalLine& operator=(const TerminalLine&) = delete;

  bool enabled() const { return enabled_; }
  void Show(const std::string& text);
  void Clear();

 private:
  bool enabled_ = false;
  size_t shown_ = 0;  // characters on the line now
};

// "prompt 4096/16384 tokens (25%), 812 tok/s"; the rate is left out while it is unknown (0).
std::string PromptProgressText(int64_t done, int64_t total, double tokens_per_second);

// generator.Generate(prompt, options) with a progress line on a terminal while a prompt of more
// than one prefill step runs (GenerateOptions::on_prefill_progress), cleared when generation
// starts. prompt_processed says how many prompt tokens the cache holds when Ctrl-C
// (options.cancel) stopped the prefill; `interrupts.interrupted` marks a cancel as the user's.
// Errors are the Generator's.
Result<Generation> GenerateWithProgress(Generator& generator, std::span<const int32_t> prompt,
                                        const GenerateOptions& options, const Interrupts& interrupts);

}  // namespace kiln::cli
