// The CPU kernel of the sparse centroid head (OpKind::kCentroidHead) against its definition
// (centroid_head_cases.h), with every dot-product table this CPU runs and every head type: f32
// and bf16 within float rounding (the inexact avx512bf16 table: its bf16 activations), block formats within the int8 activations' rounding where the
// table has them (the exact f32 path otherwise).
#include <gtest/gtest.h>

#include "backends/cpu/kernel_context.h"
#include "centroid_head_cases.h"
#include "core/thread_pool.h"

namespace kiln {
namespace {

using centroid_head_test::Case;

std::vector<float> RunCpu(const Case& c, const cpu::DotKernels* table) {
  Op op;
  op.kind = OpKind::kCentroidHead;
  op.name = "under_test";
  op.attrs.top_k = c.top_k;
  ThreadPool pool(2);
  const int64_t kept = c.top_k * (c.vocab / c.centroids);
  std::vector<float> scratch(static_cast<size_t>(cpu::CentroidHeadScratchBytes(c.dtype, c.hidden, kept) / 4 + 16));
  std::vector<float> out(static_cast<size_t>(c.rows * c.vocab));
  cpu::KernelContext context;
  context.op = &op;
  context.inputs[0] = {const_cast<float*>(c.x.data()), DType::kF32, c.rows, c.hidden};
  context.inputs[1] = {const_cast<uint8_t*>(c.head.data()), c.dtype, c.vocab, c.hidden};
  context.inputs[2] = {const_cast<float*>(c.scores.data()), DType::kF32, c.rows, c.centroids};
  context.inputs[3] = {const_cast<int32_t*>(c.ordering.data()), DType::kI32, c.vocab, 1};
  context.output = {out.data(), DType::kF32, c.rows, c.vocab};
  context.rows = c.rows;
  context.scratch = scratch.data();
  context.pool = &pool;
  context.dot = table;
  cpu::CentroidHeadKernel(context);
  return out;
}

TEST(CentroidHeadKernel, CpuMatchesTheDefinition) {
  const auto cases = centroid_head_test::Cases({DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K});
  for (const cpu::DotKernels* table : cpu::SupportedDotKernels()) {
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(table->isa) + ", " + c.name);
      const bool int8 = IsBlockDType(c.dtype) && table->quant->int8 != nullptr && table->quant->int8->For(c.dtype) != nullptr;
      // Inexact tables (avx512bf16) round x to bf16 for bf16 heads, as their linears do.
      centroid_head_test::ExpectMatchesDefinition(c, RunCpu(c, table), int8 ? 2e-2 : table->exact ? 1e-5 : 1e-2);
    }
  }
}

}  // namespace
}  // namespace kiln
