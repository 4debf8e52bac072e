// Fuzz target for the .kiln reader: the whole file (header, checksums, sections) and the program
// decoder behind the checksums. Built with libFuzzer when KILN_FUZZ=ON and the compiler is
// clang; otherwise linked with fuzz_replay_main.cpp, which replays a corpus as a ctest test.
#include <cstddef>
#include <cstdint>
#include <span>

#include "artifact/artifact_file.h"
#include "artifact/program_codec.h"
#include "backends/cpu/cpu_backend.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kiln::CpuBackend backend;
  std::span<const uint8_t> bytes(data, size);
  auto artifact = kiln::Artifact::OpenImage(bytes, "fuzz", backend, /*verify_weights=*/true);
  if (artifact.has_value()) (void)(*artifact)->VerifyChecksums();
  // The same bytes as a bare program section, bypassing the checksums.
  auto program = kiln::DecodeProgram(bytes, backend);
  if (program.has_value()) (void)kiln::VerifyProgram(program->program, program->program.arena_bytes);
  return 0;
}
