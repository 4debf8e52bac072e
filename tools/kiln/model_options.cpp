#include "model_options.h"

#include <filesystem>
#include <thread>

#include <algorithm>
#include <cstdio>

#include "engine/mtp_draft.h"
#include "generation_flags.h"

namespace kiln::cli {

Result<LoadOptions> ModelOptionsFromArgs(const Args& args, int64_t default_context) {
  LoadOptions options;
  TRY_ASSIGN(const int64_t context, args.GetInt("--ctx", default_context, 1, int64_t{1} << 24));
  TRY_ASSIGN(const int64_t chunk, args.GetInt("--chunk", 512, 1, int64_t{1} << 20));
  TRY_ASSIGN(options.num_layers, args.GetInt("--num-layers", 0, 1, 100000));
  TRY_ASSIGN(const int64_t threads, args.GetInt("--threads", 0, 0, 1024));
  TRY_ASSIGN(options.max_sequences, args.GetInt("--parallel", 1, 1, 4096));
  TRY_ASSIGN(options.kv_block_size, args.GetInt("--kv-block", 16, 1, 4096));
  options.max_context = context;
  options.max_tokens = std::min(chunk, context);
  // More threads than the machine has only make them wait for each other (a step is a series of
  // parallel loops): capped at the hardware's, and said so.
  const int64_t hardware = std::max<int64_t>(1, std::thread::hardware_concurrency());
  if (threads > hardware) {
    std::fprintf(stderr, "kiln: --threads %lld is more than this machine's %lld hardware threads; using %lld\n",
                 static_cast<long long>(threads), static_cast<long long>(hardware), static_cast<long long>(hardware));
  }
  options.num_threads = static_cast<int>(std::min(threads, hardware));
  options.guard = args.Has("--guard");
  // An MTP assistant is compiled into the model: --draft ASSISTANT, or the one shipped next to the
  // model in MODEL/mtp (--spec-type mtp alone).
  if (args.Has("--draft") || args.Has("--spec-type")) {
    TRY_ASSIGN(const SpeculativeOptions speculative, SpeculativeOptionsFromArgs(args));
    if (speculative.type == SpeculativeType::kMtp) {
      if (args.Has("--draft")) {
        options.assistant = args.Get("--draft");
      } else if (Result<std::string> model = ResolveModelPath(args); model.has_value() && std::filesystem::is_directory(*model)) {
        // (A .kiln file carries its assistant compiled in, or none.)
        const std::string shipped = (std::filesystem::path(*model) / "mtp").string();
        if (!IsMtpAssistant(shipped)) {
          return Error(ErrorCode::kInvalidArgument, "--spec-type mtp needs --draft ASSISTANT (the model's MTP assistant checkpoint); " +
                                                        *model + " ships none in " + shipped);
        }
        options.assistant = shipped;
      }
    }
  }
  options.required_context = args.Has("--ctx") ? context : 0;
  options.required_chunk = args.Has("--chunk") ? chunk : 0;
  options.source = args.Get("--source");
  options.allow_fallback = !args.Has("--no-fallback");
  options.verify_weights = args.Has("--verify-weights");
  // Absent: the CPU for a checkpoint, the target's device for an artifact.
  options.device = args.Get("--device");
  if (!options.device.empty() && options.device != "cpu" && options.device != "cuda") {
    return Error(ErrorCode::kInvalidArgument, "--device expects cpu or cuda, got '" + options.device + "'");
  }
  if (args.Has("--kv-cache")) {
    const std::string kv = args.Get("--kv-cache");
    if (kv != "f32" && kv != "bf16") return Error(ErrorCode::kInvalidArgument, "--kv-cache expects f32 or bf16, got '" + kv + "'");
    options.kv_cache_dtype = kv == "f32" ? DType::kF32 : DType::kBF16;
  }
  if (args.Has("--quant")) {
    const std::string name = args.Get("--quant");
    const std::optional<QuantRecipe> recipe = QuantRecipeFromName(name);
    if (!recipe) {
      return Error(ErrorCode::kInvalidArgument, "--quant expects one of " + QuantRecipeNames() + ", got '" + name + "'");
    }
    options.quant = *recipe;
  }
  return options;
}

int ReportError(const char* command, const Error& error) {
  std::fprintf(stderr, "kiln %s: %s\n", command, error.ToString().c_str());
  return error.code() == ErrorCode::kInvalidArgument ? 2 : 1;
}

}  // namespace kiln::cli
