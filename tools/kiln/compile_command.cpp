// kiln compile MODEL --target cpu|cpu:ISA|cuda[:sm_XX] [--ctx N] [--chunk N] [--num-layers N] [--quant NAME] -o OUT.kiln
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "cli_args.h"
#include "commands.h"
#include "compiler/plan_report.h"
#include "engine/artifact_compiler.h"
#include "engine/target_check.h"
#include "model_options.h"
#include "output_paths.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln compile MODEL -o OUT.kiln [--target cpu|cpu:ISA|cuda[:sm_XX]] [--ctx N] [--chunk N]\n"
    "                    [--num-layers N] [--quant q8_0|q4_0|q4_k_m|q6_k|fp8]\n"
    "  compiles a checkpoint directory or a GGUF file ahead of time: the same Program as JIT, with its plans,\n"
    "  weights, tokenizer files and config in one file that loads without planning.\n"
    "  --target cpu (default) runs on any x86-64 CPU; cpu:avx2 / cpu:avx512 require that ISA;\n"
    "           cuda:sm_XX runs on that GPU (e.g. cuda:sm_90 for H100/H200; no GPU needed to\n"
    "           compile), plain cuda compiles for this machine's GPU.\n"
    "  --ctx N (default 4096) and --chunk N (default 512) are the bounds the plans are made for.\n"
    "  --quant R stores the weights quantized by recipe R where the target runs them: q8_0, q4_0,\n"
    "           q4_k_m, q6_k (llama.cpp's recipes) or fp8 (docs/quantization.md).\n"
    "  --draft A compiles the model's Gemma 4 MTP assistant (a checkpoint directory or GGUF) in, as its draft\n"
    "           step: `kiln run OUT.kiln --spec-type mtp` drafts with it.\n";

}  // namespace

int RunCompile(int argc, char** argv) {
  std::set<std::string> value_flags = kModelValueFlags;
  value_flags.insert({"-o", "--out", "--target", "--draft"});
  auto args = Args::Parse(argc, argv, value_flags, {"--help"});
  if (!args) return ReportError("compile", args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::string out = args->Get("-o", args->Get("--out"));
  if (args->positionals().size() != 1 || out.empty()) {
    std::fprintf(stderr, "kiln compile: expected MODEL and -o OUT.kiln\n%s", kUsage);
    return 2;
  }
  auto target = ParseTarget(args->Get("--target", "cpu"));
  if (!target) return ReportError("compile", target.error());
  auto load = ModelOptionsFromArgs(*args, 4096);
  if (!load) return ReportError("compile", load.error());
  if (args->Has("--draft") && load->assistant.empty()) {
    return ReportError("compile", Error(ErrorCode::kInvalidArgument, "--draft " + args->Get("--draft") +
                                                                          " is not an MTP assistant (a draft model is compiled on its own)"));
  }
  Status output = PrepareOutput("compile", out, {args->positionals()[0], load->source}, /*needs_regular_file=*/true);
  if (!output.ok()) return ReportError("compile", output.error());
  ArtifactCompileOptions options;
  options.target = *target;
  options.load = *load;
  const bool interactive = ::isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  auto last_report = start;
  options.progress = [&](uint64_t done, uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (total < (64u << 20) || (now - last_report < std::chrono::milliseconds(250) && done != total)) return;
    last_report = now;
    std::fprintf(stderr, interactive ? "\rkiln compile: writing weights %3.0f%% (%s)" : "kiln compile: writing weights %3.0f%% (%s)\n",
                 100.0 * static_cast<double>(done) / static_cast<double>(total), FormatBytes(static_cast<int64_t>(done)).c_str());
    if (interactive && done == total) std::fputc('\n', stderr);
  };
  Status status = CompileArtifact(args->positionals()[0], out, options);
  if (!status.ok()) return ReportError("compile", status.error());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string quant = options.load.quant == QuantRecipe::kNone ? "" : std::string(", weights ") + QuantRecipeName(options.load.quant);
  std::fprintf(stderr, "kiln compile: wrote %s for %s%s in %.2f s\n", out.c_str(), target->ToString().c_str(), quant.c_str(), seconds);
  return 0;
}

}  // namespace kiln::cli
