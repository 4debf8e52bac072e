// One thread's rate on the block-format decode kernels (one activation row against N weight rows
// of K), the f32 path of quant_dot.h against the int8 path of quant_int8.h, for the dot table
// this CPU selects:
//
//   kiln_quant_kernel_bench [N] [K]        (default 64 x 4096: about 150 KiB to 280 KiB, in cache)
//
// Prints weights per second (and weight bytes per second) of the fastest of 40 repetitions: the
// fastest, because a shared machine only ever slows a repetition down. "int8" includes rounding
// the activation row once per call, as the linear kernel does; "dot" is the products alone.
// N x K large enough to leave the caches (e.g. 8192 4096) measures streaming instead.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "backends/cpu/simd/dot.h"
#include "core/quant.h"

namespace kiln::cpu {
namespace {

template <class Fn>
double WeightsPerSecond(int64_t weights, Fn&& fn) {
  for (int i = 0; i < 20; ++i) fn();  // warm-up: caches, the f16 table, the clock
  const int calls = weights > (int64_t{1} << 24) ? 2 : 50;
  double best = 1e30;
  for (int rep = 0; rep < 40; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
  }
  return static_cast<double>(weights) / best;
}

int Run(int64_t n, int64_t k) {
  const DotKernels& table = SelectDotKernels();
  std::printf("kernels %s, int8 %s, %lld x %lld weights, 1 thread\n", table.isa,
              table.quant->int8 != nullptr ? table.quant->int8->isa : "off", static_cast<long long>(n),
              static_cast<long long>(k));
  std::printf("%-8s %12s %12s %12s %14s\n", "format", "f32 G/s", "int8 G/s", "dot G/s", "dot GB/s read");
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(k)), out(static_cast<size_t>(n)), source(static_cast<size_t>(n * k));
  for (float& v : x) v = normal(rng);
  for (float& v : source) v = normal(rng);
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kQ5_0, DType::kQ4_1, DType::kQ5_1,
                      DType::kQ5_K}) {
    if (k % DTypeBlockElements(dtype) != 0) continue;
    const int64_t row_bytes = DTypeBytes(dtype, k);
    std::vector<uint8_t> w(static_cast<size_t>(n * row_bytes));
    QuantizeRow(dtype, source.data(), n * k, w.data());
    const double f32 = WeightsPerSecond(n * k, [&] { table.quant->For(dtype)(x.data(), k, 1, w.data(), row_bytes, n, k, out.data(), 1); });
    double int8 = 0, dot = 0;
    if (const Int8DotKernels* i8 = table.quant->int8; i8 != nullptr && i8->For(dtype) != nullptr) {
      std::vector<uint8_t> xq(static_cast<size_t>(Int8ActRowBytes(dtype, k)));
      int8 = WeightsPerSecond(n * k, [&] {
        i8->QuantizerFor(dtype)(x.data(), k, 1, k, xq.data());
        i8->For(dtype)(xq.data(), 1, w.data(), row_bytes, n, k, out.data(), 1);
      });
      dot = WeightsPerSecond(n * k, [&] { i8->For(dtype)(xq.data(), 1, w.data(), row_bytes, n, k, out.data(), 1); });
    }
    std::printf("%-8s %12.1f %12.1f %12.1f %14.1f\n", DTypeName(dtype), f32 / 1e9, int8 / 1e9, dot / 1e9,
                dot * static_cast<double>(row_bytes) / static_cast<double>(k) / 1e9);
  }
  return 0;
}

}  // namespace
}  // namespace kiln::cpu

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 64, k = argc > 2 ? std::atoll(argv[2]) : 4096;
  if (n <= 0 || k <= 0 || k % 256 != 0) {
    std::fprintf(stderr, "usage: kiln_quant_kernel_bench [N] [K]   (K a multiple of 256)\n");
    return 2;
  }
  return kiln::cpu::Run(n, k);
}
