// kiln logits MODEL --tokens 2,651,... [--chunk N] [--ctx N] --out F.npy
// Writes the logits of every position as float32 [T, vocab], for comparison with any other
// implementation (numpy.load).
#include <cstdio>

#include "cli_args.h"
#include "model_options.h"
#include "commands.h"
#include "output_paths.h"
#include "engine/model_loader.h"
#include "io/npy.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln logits MODEL --tokens ID,ID,... --out FILE.npy [--chunk N] [--ctx N] [--threads N]\n"
    "                     [--num-layers N] [--guard] [--source DIR] [--no-fallback]\n"
    "  MODEL is a checkpoint directory or a .kiln artifact; writes float32 logits of every\n"
    "  position, shape [tokens, vocab]\n";

}  // namespace

int RunLogits(int argc, char** argv) {
  std::set<std::string> value_flags = kModelValueFlags;
  value_flags.insert({"--tokens", "--out"});
  std::set<std::string> switches = kModelSwitches;
  switches.insert("--help");
  auto args = Args::Parse(argc, argv, value_flags, switches);
  if (!args) return ReportError("logits", args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args->positionals().size() != 1 || !args->Has("--tokens") || !args->Has("--out")) {
    std::fprintf(stderr, "kiln logits: expected MODEL, --tokens and --out\n%s", kUsage);
    return 2;
  }
  auto tokens = ParseTokenList(args->Get("--tokens"));
  if (!tokens) return ReportError("logits", tokens.error());
  const int64_t needed = static_cast<int64_t>(tokens->size());
  auto options = ModelOptionsFromArgs(*args, std::max<int64_t>(needed, 1));
  if (!options) return ReportError("logits", options.error());
  if (needed > options->max_context) {
    return ReportError("logits", Error(ErrorCode::kInvalidArgument, std::to_string(needed) + " tokens do not fit in --ctx " +
                                                                        std::to_string(options->max_context)));
  }
  options->required_context = std::max(options->required_context, needed);
  Status output = PrepareOutput("logits", args->Get("--out"), {args->positionals()[0], options->source});
  if (!output.ok()) return ReportError("logits", output.error());
  auto model = LoadedModel::Load(args->positionals()[0], *options);
  if (!model) return ReportError("logits", model.error());
  auto session = (*model)->NewSession();
  if (!session) return ReportError("logits", session.error());
  auto logits = session->Prefill(*tokens, /*all_positions=*/true);
  if (!logits) return ReportError("logits", logits.error());
  Status written = WriteNpyF32(args->Get("--out"), logits->data(), {needed, session->vocab_size()});
  if (!written.ok()) return ReportError("logits", written.error());
  std::fprintf(stderr, "kiln logits: wrote [%lld, %lld] float32 to %s\n", static_cast<long long>(needed),
               static_cast<long long>(session->vocab_size()), args->Get("--out").c_str());
  return 0;
}

}  // namespace kiln::cli
