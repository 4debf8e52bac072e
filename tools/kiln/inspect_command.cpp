// kiln inspect MODEL [--plan] [--num-layers N] [--ctx N] [--chunk N]
// MODEL is a checkpoint directory or a bare config.json (plan a model before downloading it).
#include <cstdio>

#include "cli_args.h"
#include "commands.h"
#include "compiler/plan_report.h"
#include "engine/model_loader.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln inspect MODEL [--plan] [--num-layers N] [--ctx N] [--chunk N] [--guard]\n"
    "  MODEL       checkpoint directory (config.json + *.safetensors) or a config.json file\n"
    "  --plan      print every step function's memory plan\n"
    "  --num-layers N  keep the first N layers (bisection)\n"
    "  --ctx N     context length to plan the KV cache for (default 4096)\n"
    "  --chunk N   largest prefill chunk, Tmax (default 512)\n";

int Fail(const Error& error) {
  std::fprintf(stderr, "kiln inspect: %s\n", error.ToString().c_str());
  return error.code() == ErrorCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int RunInspect(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, {"--num-layers", "--ctx", "--chunk"}, {"--plan", "--guard", "--help"});
  if (!args) return Fail(args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args->positionals().size() != 1) {
    std::fprintf(stderr, "kiln inspect: expected one MODEL path\n%s", kUsage);
    return 2;
  }
  LoadOptions options;
  auto ctx = args->GetInt("--ctx", 4096, 1, int64_t{1} << 24);
  auto chunk = args->GetInt("--chunk", 512, 1, int64_t{1} << 20);
  auto layers = args->GetInt("--num-layers", 0, 1, 100000);
  if (!ctx) return Fail(ctx.error());
  if (!chunk) return Fail(chunk.error());
  if (!layers) return Fail(layers.error());
  options.max_context = *ctx;
  options.max_tokens = std::min(*chunk, *ctx);
  options.num_layers = *layers;
  options.guard = args->Has("--guard");
  auto model = LoadedModel::Load(args->positionals()[0], options);
  if (!model) return Fail(model.error());
  const Gemma4Config& config = (*model)->config();
  const Program& program = (*model)->program();

  std::printf("model     %s%s\n", (*model)->source().c_str(), (*model)->has_weights() ? "" : "  (config only: no weights)");
  std::printf("config    %s\n", config.Summary().c_str());
  std::printf("target    %s, Tmax %lld, context %lld\n", program.target.c_str(),
              static_cast<long long>(program.max_tokens), static_cast<long long>(program.max_context));
  std::printf("weights   %zu tensors, %s%s\n", program.weights.size(), FormatBytes(program.weight_bytes()).c_str(),
              (*model)->has_weights() ? "" : " (assuming the config's dtype)");
  // KV cache by layer group: sliding rings never count at full context.
  int64_t sliding_bytes = 0, full_bytes = 0, sliding_count = 0, full_count = 0;
  for (const CacheLayout& cache : program.caches) {
    (cache.window > 0 ? sliding_bytes : full_bytes) += cache.bytes();
    (cache.window > 0 ? sliding_count : full_count)++;
  }
  std::printf("kv cache  %s: %lld sliding layers %s (ring), %lld full layers %s (context)\n",
              FormatBytes(program.cache_bytes()).c_str(), static_cast<long long>(sliding_count),
              FormatBytes(sliding_bytes).c_str(), static_cast<long long>(full_count), FormatBytes(full_bytes).c_str());
  std::printf("arena     %s (largest step; all plans verified)\n", FormatBytes(program.arena_bytes).c_str());
  std::printf("layers    idx type     head_dim kv_heads k_eq_v kv_from ffn\n");
  for (const Gemma4LayerConfig& layer : config.layers) {
    std::printf("          %3lld %-8s %8lld %8lld %6s %7lld %lld%s\n", static_cast<long long>(layer.self_index),
                layer.attention == AttentionType::kFull ? "full" : "sliding", static_cast<long long>(layer.head_dim),
                static_cast<long long>(layer.num_kv_heads), layer.k_eq_v ? "yes" : "no",
                static_cast<long long>(layer.kv_source_layer), static_cast<long long>(layer.intermediate_size),
                layer.moe ? " +moe" : "");
  }
  if (args->Has("--plan")) std::fputs(FormatPlanReport(program).c_str(), stdout);
  return 0;
}

}  // namespace kiln::cli
