// kiln inspect MODEL [--plan] [--device cpu|cuda] [--num-layers N] [--ctx N] [--chunk N] [--quant NAME]
// MODEL is a checkpoint directory, a .kiln artifact or a bare config.json (plan a model before
// downloading it). Everything is planned, nothing run: no GPU is needed to inspect for cuda.
#include <algorithm>
#include <cstdio>
#include <tuple>
#include <vector>

#include "cli_args.h"
#include "model_options.h"
#include "commands.h"
#include "compiler/plan_report.h"
#include "compiler/quant_report.h"
#include "engine/model_loader.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln inspect MODEL [--plan] [--device cpu|cuda] [--num-layers N] [--ctx N] [--chunk N] [--guard]\n"
    "                    [--quant q8_0|q4_0|q4_k_m|q6_k|fp8] [--draft ASSISTANT]\n"
    "  MODEL       checkpoint directory (config.json + *.safetensors), a .kiln artifact,\n"
    "              or a bare config.json (plan a model before downloading it)\n"
    "  --plan      print every step function's memory plan\n"
    "  --device D  the device to report a session's memory for (default cpu; an artifact's is\n"
    "              its target's); planned without the device, so no GPU is needed for cuda\n"
    "  --num-layers N  keep the first N layers (bisection)\n"
    "  --ctx N     context length to plan the KV cache for (default 4096)\n"
    "  --chunk N   largest prefill chunk, Tmax (default 512)\n"
    "  --quant R   plan a checkpoint with its weights quantized by recipe R (docs/quantization.md);\n"
    "              the report lists each kind of weight with its dtype, count and bytes\n"
    "  --draft A   plan with the model's Gemma 4 MTP assistant (a checkpoint directory or GGUF) compiled in\n";

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

// Caches alike in every dimension, reported as one line.
struct CacheGroup {
  const CacheLayout* first = nullptr;
  int64_t count = 0;
  int64_t bytes = 0;
};

// Pool bytes of each line: the blocks of `pool` in each layer's group.
std::vector<CacheGroup> GroupCaches(const Program& program, const KvPoolSize& pool) {
  const std::vector<CacheLayout>& caches = program.caches;
  std::vector<CacheGroup> groups;
  auto key = [](const CacheLayout& c) { return std::tuple(c.window, c.num_kv_heads, c.head_dim, c.capacity_positions, c.dtype); };
  for (const CacheLayout& cache : caches) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const CacheGroup& g) { return key(*g.first) == key(cache); });
    if (it == groups.end()) it = groups.insert(groups.end(), CacheGroup{&cache, 0, 0});
    it->count += 1;
    it->bytes += pool.blocks[static_cast<size_t>(cache.group)] * program.kv_block_size * 2 * cache.row_bytes();
  }
  return groups;
}

std::string Count(int64_t count, const char* noun) { return std::to_string(count) + " " + noun + (count == 1 ? "" : "s"); }

std::string Bytes(int64_t bytes) { return FormatBytes(bytes) + " (" + std::to_string(bytes) + " bytes)"; }

// What a session of the program takes on the device, by kind of memory, as the backend plans it.
void PrintDeviceMemory(const LoadedModel& model) {
  const Program& program = model.program();
  const KvPoolSize pool = KvPoolSize::ForSequences(program, program.max_sequences);
  const MemoryReport report = model.backend().PlanMemory(program, pool);
  std::printf("memory    the model on %s for %lld sequence%s (Tmax %lld, context %lld, KV blocks of %lld), planned: %s\n",
              model.device().c_str(), static_cast<long long>(program.max_sequences), program.max_sequences == 1 ? "" : "s",
              static_cast<long long>(program.max_tokens), static_cast<long long>(program.max_context),
              static_cast<long long>(program.kv_block_size), FormatBytes(report.total()).c_str());
  // A checkpoint loaded with a recipe holds its packed weights in memory, not in the mapping.
  int64_t packed_bytes = 0;
  if (!model.artifact() && model.has_weights()) {
    for (const WeightBinding& w : program.weights) packed_bytes += w.dtype != w.source_dtype ? w.size_bytes() : 0;
  }
  const std::string where = packed_bytes > 0 ? ", read in place from the mapped file but for " + Bytes(packed_bytes) + " packed at load"
                                             : ", read in place from the mapped file";
  std::printf("          weights   %s%s\n", Bytes(report.weight_bytes).c_str(),
              report.weight_bytes == 0 && !program.weights.empty() ? where.c_str() : "");
  std::printf("          kv cache  %s\n", Bytes(report.cache_bytes).c_str());
  for (const CacheGroup& group : GroupCaches(program, pool)) {
    const CacheLayout& c = *group.first;
    const std::string kind = c.window > 0 ? "sliding window " + std::to_string(c.window) : "full attention";
    const std::string positions = (c.window > 0 ? "ring of " : "") + std::to_string(c.capacity_positions) + " positions";
    std::printf("            %s (%s x %lld, %s, %s): %s, %s\n", kind.c_str(), Count(c.num_kv_heads, "KV head").c_str(),
                static_cast<long long>(c.head_dim), positions.c_str(), DTypeName(c.dtype), Count(group.count, "layer").c_str(),
                Bytes(group.bytes).c_str());
  }
  std::printf("          arena     %s\n", Bytes(report.arena_bytes).c_str());
  std::printf("          other     %s\n", Bytes(report.other_bytes).c_str());
  std::printf("          total     %s\n", Bytes(report.total()).c_str());
}

}  // namespace

int RunInspect(int argc, char** argv) {
  std::set<std::string> switches = kModelSwitches;
  switches.insert({"--plan", "--help"});
  std::set<std::string> values = kModelValueFlags;
  values.insert("--draft");
  auto args = Args::Parse(argc, argv, values, switches);
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
  if (args->Has("--draft") && options->assistant.empty()) {
    return ReportError("inspect", Error(ErrorCode::kInvalidArgument, "--draft " + args->Get("--draft") +
                                                                          " is not an MTP assistant (a draft model is a model of its own: inspect it alone)"));
  }
  options->plan_only = true;
  auto model = LoadedModel::Load(args->positionals()[0], *options);
  if (!model) return ReportError("inspect", model.error());
  const ModelArchitecture& architecture = (*model)->architecture();
  const Program& program = (*model)->program();

  std::printf("model     %s%s\n", (*model)->source().c_str(), (*model)->has_weights() ? "" : "  (config only: no weights)");
  if (const Artifact* artifact = (*model)->artifact()) PrintArtifactHeader(*artifact);
  std::printf("config    %s\n", architecture.Summary().c_str());
  if (!(*model)->assistant_summary().empty()) std::printf("drafter   %s (step 'draft')\n", (*model)->assistant_summary().c_str());
  std::printf("target    %s, Tmax %lld, %lld sequence%s per step, context %lld\n", program.target.c_str(),
              static_cast<long long>(program.max_tokens), static_cast<long long>(program.max_sequences),
              program.max_sequences == 1 ? "" : "s", static_cast<long long>(program.max_context));
  std::printf("weights   %zu tensors, %s%s\n", program.weights.size(), FormatBytes(program.weight_bytes()).c_str(),
              (*model)->has_weights() ? "" : " (assuming the config's dtype)");
  std::fputs(FormatQuantReport(program).c_str(), stdout);
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
  PrintDeviceMemory(**model);
  const std::vector<std::string> table = architecture.LayerTable();
  for (size_t i = 0; i < table.size(); ++i) std::printf("%s%s\n", i == 0 ? "layers    " : "          ", table[i].c_str());
  if (args->Has("--plan")) std::fputs(FormatPlanReport(program).c_str(), stdout);
  return 0;
}

}  // namespace kiln::cli
