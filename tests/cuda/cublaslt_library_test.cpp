// cuBLASLt is loaded when first needed, not at startup (cublaslt_library.h): a CPU run of a CUDA
// build does not pay for it. Needs the CUDA toolkit's libraries, not a GPU.
#include <gtest/gtest.h>

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

TEST(CublasLtLibrary, LoadedOnFirstUseOnly) {
  EXPECT_FALSE(Mapped("libcublasLt")) << "cuBLASLt was loaded before anything asked for it";
  auto api = LoadCublasLt();
  ASSERT_TRUE(api.has_value()) << api.error().ToString();
  EXPECT_NE((*api)->Matmul, nullptr);
  EXPECT_TRUE(Mapped("libcublasLt"));
  auto again = LoadCublasLt();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *api);  // once per process
}

}  // namespace
}  // namespace kiln::cuda
