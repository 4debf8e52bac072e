// kiln logits MODEL --tokens 2,651,... [--chunk N] [--ctx N] --out F.npy
// Writes the logits of every position as float32 [T, vocab], for comparison with any other
// implementation (numpy.load).
#include <cstdio>

#include "cli_args.h"
#include "commands.h"
#include "engine/model_loader.h"
#include "io/npy.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln logits MODEL --tokens ID,ID,... --out FILE.npy [--chunk N] [--ctx N] [--threads N]\n"
    "                     [--num-layers N] [--guard]\n"
    "  writes float32 logits of every position, shape [tokens, vocab]\n";

int Fail(const Error& error) {
  std::fprintf(stderr, "kiln logits: %s\n", error.ToString().c_str());
  return error.code() == ErrorCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int RunLogits(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, {"--tokens", "--out", "--chunk", "--ctx", "--threads", "--num-layers"},
                          {"--guard", "--help"});
  if (!args) return Fail(args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args->positionals().size() != 1 || !args->Has("--tokens") || !args->Has("--out")) {
    std::fprintf(stderr, "kiln logits: expected MODEL, --tokens and --out\n%s", kUsage);
    return 2;
  }
  auto tokens = ParseTokenList(args->Get("--tokens"));
  if (!tokens) return Fail(tokens.error());
  auto chunk = args->GetInt("--chunk", 512, 1, int64_t{1} << 20);
  auto threads = args->GetInt("--threads", 0, 0, 1024);
  auto layers = args->GetInt("--num-layers", 0, 1, 100000);
  const int64_t needed = static_cast<int64_t>(tokens->size());
  auto ctx = args->GetInt("--ctx", std::max<int64_t>(needed, 1), 1, int64_t{1} << 24);
  if (!chunk) return Fail(chunk.error());
  if (!threads) return Fail(threads.error());
  if (!layers) return Fail(layers.error());
  if (!ctx) return Fail(ctx.error());
  if (needed > *ctx) {
    return Fail(Error(ErrorCode::kInvalidArgument, std::to_string(needed) + " tokens do not fit in --ctx " +
                                                       std::to_string(*ctx)));
  }
  LoadOptions options;
  options.max_context = *ctx;
  options.max_tokens = std::min(*chunk, *ctx);
  options.num_layers = *layers;
  options.guard = args->Has("--guard");
  options.num_threads = static_cast<int>(*threads);
  auto model = LoadedModel::Load(args->positionals()[0], options);
  if (!model) return Fail(model.error());
  auto session = (*model)->NewSession();
  if (!session) return Fail(session.error());
  auto logits = session->Prefill(*tokens, /*all_positions=*/true);
  if (!logits) return Fail(logits.error());
  Status written = WriteNpyF32(args->Get("--out"), logits->data(), {needed, session->vocab_size()});
  if (!written.ok()) return Fail(written.error());
  std::fprintf(stderr, "kiln logits: wrote [%lld, %lld] float32 to %s\n", static_cast<long long>(needed),
               static_cast<long long>(session->vocab_size()), args->Get("--out").c_str());
  return 0;
}

}  // namespace kiln::cli
