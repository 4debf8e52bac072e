// kiln verify OUT.kiln: every section checksum (the weights too) and every plan, re-verified.
#include <cstdio>

#include "cli_args.h"
#include "commands.h"
#include "engine/model_loader.h"
#include "engine/target_check.h"
#include "model_options.h"

namespace kiln::cli {

int RunVerify(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, {}, {"--help"});
  if (!args) return ReportError("verify", args.error());
  if (args->Has("--help") || args->positionals().size() != 1) {
    std::fputs("usage: kiln verify OUT.kiln\n  checks every section checksum and re-verifies every memory plan\n",
               args->Has("--help") ? stdout : stderr);
    return args->Has("--help") ? 0 : 2;
  }
  const std::string& path = args->positionals()[0];
  // Decoded with the catalog of its target's backend; no device is needed to verify.
  auto backend = MakeBackendForArtifact(path);
  if (!backend) return ReportError("verify", backend.error());
  auto artifact = Artifact::Open(path, **backend, /*verify_weights=*/true);
  if (!artifact) return ReportError("verify", artifact.error());
  Status checked = (*artifact)->VerifyChecksums();
  if (!checked.ok()) return ReportError("verify", checked.error());
  const Program& program = (*artifact)->program();
  std::printf("%s: %zu sections, checksums ok; %zu step functions, every plan verified; %zu weights\n", path.c_str(),
              (*artifact)->header().sections.size(), program.steps.size(), program.weights.size());
  Status runnable = CheckTargetRunnable((*artifact)->header().target, path);
  if (!runnable.ok()) std::printf("note: %s\n", runnable.error().message().c_str());
  return 0;
}

}  // namespace kiln::cli
