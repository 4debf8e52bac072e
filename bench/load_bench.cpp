// Loading a compiled ~1 GB model: .kiln artifact vs reading the file vs JIT from the checkpoint.
//
//   kiln_load_bench [--keep DIR]
//
// Synthesizes a random-weight Gemma 4 checkpoint of about 1 GB (bf16), compiles it, then times
// (median of 5, page cache warm): reading the artifact file with read(); loading the artifact
// (mmap, header, checksums of the metadata sections, program decode, plan verification); the
// same plus a first decode step (which touches every weight page); and JIT loading from the
// checkpoint (config parse, graph build, planning) with and without the first step.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "compiler/plan_report.h"
#include "engine/artifact_compiler.h"
#include "engine/target_check.h"
#include "random_model.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double ReadWholeFile(const std::string& path) {
  const auto start = Clock::now();
  const int fd = ::open(path.c_str(), O_RDONLY);
  std::vector<char> buffer(8 << 20);
  while (::read(fd, buffer.data(), buffer.size()) > 0) {
  }
  ::close(fd);
  return Seconds(start);
}

// Load (and optionally run one decode step) `path`; returns seconds.
Result<double> LoadOnce(const std::string& path, bool first_step) {
  LoadOptions options;
  options.max_tokens = 64;
  options.max_context = 1024;
  options.allow_fallback = false;
  const auto start = Clock::now();
  TRY_ASSIGN(auto model, LoadedModel::Load(path, options));
  if (first_step) {
    TRY_ASSIGN(Session session, model->NewSession());
    const int32_t token = 2;
    TRY(session.Step({&token, 1}));
  }
  return Seconds(start);
}

int Main(int argc, char** argv) {
  fs::path root = fs::temp_directory_path() / "kiln_load_bench";
  const bool keep = argc == 3 && std::strcmp(argv[1], "--keep") == 0;
  if (keep) root = argv[2];
  fs::create_directories(root);
  const fs::path checkpoint = root / "checkpoint", artifact = root / "model.kiln";
  // hidden 2048, 7 layers, MLP 8192, vocab 65536: about 519M parameters, 1.04 GB in bf16.
  if (!fs::exists(checkpoint / "model.safetensors")) {
    std::fprintf(stderr, "writing a random 1 GB checkpoint...\n");
    Status written = WriteRandomModel(checkpoint, GemmaConfig(65536, 2048, 7, 8, 2, 128, 256, 8192, 512));
    if (!written.ok()) return std::fprintf(stderr, "%s\n", written.ToString().c_str()), 1;
  }
  ArtifactCompileOptions compile;
  compile.target = ParseTarget("cpu").value();
  compile.load.max_tokens = 64;
  compile.load.max_context = 1024;
  auto compile_start = Clock::now();
  Status compiled = CompileArtifact(checkpoint.string(), artifact.string(), compile);
  if (!compiled.ok()) return std::fprintf(stderr, "%s\n", compiled.ToString().c_str()), 1;
  const double compile_seconds = Seconds(compile_start);
  const double file_bytes = static_cast<double>(fs::file_size(artifact));

  std::vector<double> read_times, aot, aot_step, jit, jit_step;
  for (int rep = 0; rep < 6; ++rep) {
    const double r = ReadWholeFile(artifact.string());
    auto a = LoadOnce(artifact.string(), false), as = LoadOnce(artifact.string(), true);
    auto j = LoadOnce(checkpoint.string(), false), js = LoadOnce(checkpoint.string(), true);
    if (!a || !as || !j || !js) return std::fprintf(stderr, "load failed\n"), 1;
    if (rep == 0) continue;  // warms the page cache
    read_times.push_back(r);
    aot.push_back(*a);
    aot_step.push_back(*as);
    jit.push_back(*j);
    jit_step.push_back(*js);
  }
  std::printf("artifact %s (%s), compiled in %.2f s\n\n", artifact.c_str(), FormatBytes(static_cast<int64_t>(file_bytes)).c_str(),
              compile_seconds);
  std::printf("%-44s %10s %12s\n", "what (page cache warm, median of 5)", "seconds", "vs read()");
  const double base = Median(read_times);
  auto row = [&](const char* what, double seconds) { std::printf("%-44s %10.4f %11.2fx\n", what, seconds, seconds / base); };
  row("read() the whole .kiln file", base);
  row("load .kiln (validate, decode, verify plans)", Median(aot));
  row("load .kiln + first decode step", Median(aot_step));
  row("JIT load from checkpoint (parse, plan)", Median(jit));
  row("JIT load + first decode step", Median(jit_step));
  std::printf("\nread() rate: %.2f GB/s\n", file_bytes / base / 1e9);
  if (!keep) fs::remove_all(root);
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) { return kiln::Main(argc, argv); }
