// The model-loading flags every subcommand shares, parsed in one place:
//   --ctx N  --chunk N  --num-layers N  --threads N  --guard  --device cpu|cuda (absent: the
//   CPU for a checkpoint, the target's device for an artifact)  --kv-cache f32|bf16 (default: the
//   target's choice: bf16 on CUDA for bf16/f16 checkpoints, else f32)
//   --quant q8_0|q4_0|q4_k_m|q6_k|fp8   (checkpoints: the weights' quantization recipe)
//   --source DIR  --no-fallback  --verify-weights      (for .kiln artifacts)
#pragma once

#include <set>
#include <string>

#include "cli_args.h"
#include "engine/model_loader.h"

namespace kiln::cli {

inline const std::set<std::string> kModelValueFlags = {"--ctx", "--chunk", "--parallel", "--kv-block", "--num-layers", "--threads", "--source", "--device", "--kv-cache", "--quant"};
inline const std::set<std::string> kModelSwitches = {"--guard", "--no-fallback", "--verify-weights"};

// `default_context` applies when --ctx is absent. An explicit --ctx also becomes the context an
// artifact must have been compiled for.
Result<LoadOptions> ModelOptionsFromArgs(const Args& args, int64_t default_context);

// Prints "kiln <command>: <error>" and returns the exit status (2 for invalid arguments).
int ReportError(const char* command, const Error& error);

}  // namespace kiln::cli
