// kiln inspect MODEL [--plan] [--num-layers N] [--ctx N] [--chunk N]
// MODEL is a checkpoint directory or a bare config.json (plan a model before downloading it).
#include <cstdio>

#include "cli_args.h"
#include "model_options.h"
#include "commands.h"
#include "compiler/plan_report.h"
#include "engine/model_loader.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln inspect MODEL [--plan] [--num-layers N] [--ctx N] [--chunk N] [--guard]\n"
    "  MODEL       checkpoint directory (config.json + *.safetensors), a .kiln artifact,\n"
    "              or a bare config.json (plan a model before downloading it)\n"
    "  --plan      print every step function's memory plan\n"
    "  --num-layers N  keep the first N layers (bisection)\n"
    "  --ctx N     context length to plan the KV cache for (default 4096)\n"
    "  --chunk N   largest prefill chunk, Tmax (default 512)\n";

void PrintArtifactHeader(const Artifact& artifact) {
  const ArtifactHeader& header = artifact.header();
  std::printf("artifact  format %llu, written by %s, %s\n", static_cast<unsigned long long>(header.format_version),
              header.producer.c_str(), FormatBytes(static_cast<int64_t>(artifact.size_bytes())).c_str());
  std::printf("target    %s\n", header.target.ToString().c_str());
  std::printf("source    %s (hash %s)%s\n", header.source_path.c_str(), header.source_hash.c_str(),
              header.num_layers > 0 ? (" first " + std::to_string(header.num_layers) + " layers").c_str() : "");
  std::printf("sections  name                       offset         size  checksum\n");
  for (const ArtifactSection& section : header.sections) {
    std::printf("          %-22s %10llu %12s  %016llx\n", section.name.c_str(), static_cast<unsigned long long>(section.offset),
                FormatBytes(static_cast<int64_t>(section.size)).c_str(), static_cast<unsigned long long>(section.checksum));
  }
}

}  // namespace

int RunInspect(int argc, char** argv) {
  std::set<std::string> switches = kModelSwitches;
  switches.insert({"--plan", "--help"});
  auto args = Args::Parse(argc, argv, kModelValueFlags, switches);
  if (!args) return ReportError("inspect", args.error());
  if (args->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args->positionals().size() != 1) {
    std::fprintf(stderr, "kiln inspect: expected one MODEL path\n%s", kUsage);
    return 2;
  }
  auto options = ModelOptionsFromArgs(*args, 4096);
  if (!options) return ReportError("inspect", options.error());
  auto model = LoadedModel::Load(args->positionals()[0], *options);
  if (!model) return ReportError("inspect", model.error());
  const Gemma4Config& config = (*model)->config();
  const Program& program = (*model)->program();

  std::printf("model     %s%s\n", (*model)->source().c_str(), (*model)->has_weights() ? "" : "  (config only: no weights)");
  if (const Artifact* artifact = (*model)->artifact()) PrintArtifactHeader(*artifact);
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
