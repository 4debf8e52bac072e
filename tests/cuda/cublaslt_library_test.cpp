// cuBLASLt is loaded when first needed, not at startup (cublaslt_library.h): a CPU run of a CUDA
// build does not pay for it. Needs the CUDA toolkit's libraries, not a GPU.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "backends/cuda/cublaslt_library.h"

namespace kiln::cuda {
namespace {

bool Mapped(const std::string& library) {
  std::ifstream maps("/proc/self/maps");
  std::stringstream text;
  text << maps.rdbuf();
  return text.str().find(library) != std::string::npos;
}

// The checks, for a process in which nothing has used cuBLASLt yet: 0 when they hold, else 1 with
// the reason on stderr.
int LoadsOnFirstUseOnly() {
  auto fail = [](const char* why) {
    std::fprintf(stderr, "%s\n", why);
    return 1;
  };
  if (Mapped("libcublasLt")) return fail("cuBLASLt was loaded before anything asked for it");
  auto api = LoadCublasLt();
  if (!api) return fail(api.error().ToString().c_str());
  if ((*api)->Matmul == nullptr) return fail("no cublasLtMatmul");
  if (!Mapped("libcublasLt")) return fail("cuBLASLt is not mapped after loading it");
  auto again = LoadCublasLt();
  if (!again || *again != *api) return fail("a second load gave another table");  // once per process
  return 0;
}

TEST(CublasLtLibrary, LoadedOnFirstUseOnly) {
  // Other tests of this binary may have loaded it already: the checks run in a fresh process (the
  // threadsafe style re-executes the binary for this test alone instead of forking this one).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(LoadsOnFirstUseOnly()), testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace kiln::cuda
