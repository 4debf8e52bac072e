// Block-format weights on the CPU: every kernel table this build compiled and this CPU runs,
// for every format, against the scalar reference (DequantizeRow, then a double-precision dot);
// then the linear, embedding and MoE-facing entry points and CheckOp through the backend.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernel_context.h"
#include "backends/cpu/simd/dot.h"
#include "core/quant.h"
#include "random_block_rows.h"

namespace kiln::cpu {
namespace {

constexpr DType kBlockTypes[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kF8_E4M3,
                                 DType::kQ5_0, DType::kQ5_1, DType::kQ4_1, DType::kQ5_K};

struct Case {
  int64_t k = 0, rows = 0, count = 0;
};

// For each format and table: rows 1..9 (groups of four plus every remainder) against counts
// 1..6 (groups of four weight rows plus remainders), several blocks long, with padded strides.
TEST(QuantKernelsTest, EveryIsaAndFormatMatchesReference) {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DType dtype : kBlockTypes) {
    const int64_t per_block = DTypeBlockElements(dtype);
    for (int64_t blocks : {1, 3, 10}) {
      const int64_t k = blocks * per_block;
      const int64_t row_bytes = DTypeBytes(dtype, k) + DTypeBlockBytes(dtype);  // one block of padding
      const int64_t max_rows = 9, max_count = 6, x_stride = k + 3, out_stride = max_count + 2;
      const std::vector<uint8_t> w = RandomBlockRows(dtype, max_count, k, row_bytes, rng);
      std::vector<float> x(static_cast<size_t>(max_rows * x_stride));
      for (float& v : x) v = normal(rng);
      // The reference: each weight row dequantized by the scalar code, dots in double.
      std::vector<float> dequantized(static_cast<size_t>(max_count * k));
      for (int64_t j = 0; j < max_count; ++j) DequantizeRow(dtype, w.data() + j * row_bytes, k, dequantized.data() + j * k);
      for (const DotKernels* table : SupportedDotKernels()) {
        const QuantDotFn fn = table->quant->For(dtype);
        ASSERT_NE(fn, nullptr) << table->isa << " " << DTypeName(dtype);
        for (int64_t rows = 1; rows <= max_rows; ++rows) {
          for (int64_t count = 1; count <= max_count; ++count) {
            std::vector<float> out(static_cast<size_t>(max_rows * out_stride), -12345.0f);
            fn(x.data(), x_stride, rows, w.data(), row_bytes, count, k, out.data(), out_stride);
            for (int64_t r = 0; r < max_rows; ++r) {
              for (int64_t j = 0; j < out_stride; ++j) {
                const float got = out[static_cast<size_t>(r * out_stride + j)];
                if (r >= rows || j >= count) {  // nothing outside rows x count is written
                  ASSERT_EQ(got, -12345.0f) << table->isa << " " << DTypeName(dtype) << " r=" << r << " j=" << j;
                  continue;
                }
                double want = 0, magnitude = 0, largest = 0;
                for (int64_t i = 0; i < k; ++i) {
                  const double xv = x[static_cast<size_t>(r * x_stride + i)], wv = dequantized[static_cast<size_t>(j * k + i)];
                  want += xv * wv;
                  magnitude += std::abs(xv * wv);
                  largest = std::max(largest, std::abs(wv));
                }
                // f32 accumulation over at most a few hundred terms per accumulator: 1e-5 of
                // sum|x*w| is about 100 ulps. q4_k and q5_k fuse d*sc*q - dmin*m, q4_1 and q5_1
                // d*q + m, into one rounding, off by an ulp of the larger term (<= the row's
                // largest |w| plus the minimum).
                double tolerance = 1e-5 * magnitude + 1e-7;
                if (dtype == DType::kQ4_K || dtype == DType::kQ5_K || dtype == DType::kQ4_1 || dtype == DType::kQ5_1) {
                  double sum_x = 0;
                  for (int64_t i = 0; i < k; ++i) sum_x += std::abs(x[static_cast<size_t>(r * x_stride + i)]);
                  tolerance += std::ldexp(sum_x * 2 * largest, -22);
                }
                ASSERT_NEAR(got, want, tolerance) << table->isa << " " << DTypeName(dtype) << " k=" << k << " rows=" << rows
                                                  << " count=" << count << " r=" << r << " j=" << j;
              }
            }
          }
        }
      }
    }
  }
}

// Every E4M3 code but NaN, in one row, against F8E4M3ToF32: subnormals, zeros of both signs and
// the largest finite values included.
TEST(QuantKernelsTest, EveryF8CodeDecodesExactly) {
  std::vector<BlockF8E4M3> blocks(2);
  for (int code = 0; code < 256; ++code) blocks[static_cast<size_t>(code / 128)].q[code % 128] = (code & 0x7F) == 0x7F ? 0 : static_cast<uint8_t>(code);
  blocks[0].scale = 1.0f;
  blocks[1].scale = -0.5f;
  for (const DotKernels* table : SupportedDotKernels()) {
    for (int code = 0; code < 256; ++code) {
      if ((code & 0x7F) == 0x7F) continue;
      // A one-hot activation picks out element `code`: the kernel's dequantized value, exactly.
      std::vector<float> x(256, 0.0f);
      x[static_cast<size_t>(code)] = 1.0f;
      float got = 0;
      table->quant->f8_e4m3(x.data(), 256, 1, blocks.data(), 2 * sizeof(BlockF8E4M3), 1, 256, &got, 1);
      const float want = (code < 128 ? 1.0f : -0.5f) * F8E4M3ToF32(static_cast<uint8_t>(code));
      EXPECT_EQ(got, want) << table->isa << " code " << code;
    }
  }
}

// ---- Through the kernels of the backend: linear (decode and multi-row), embedding. ----

struct OpRun {
  Op op;
  KernelContext context;
  ThreadPool pool{2};
  OpRun(OpKind kind, const DotKernels* table) {
    op.kind = kind;
    op.name = "under_test";
    context.op = &op;
    context.pool = &pool;
    context.dot = table;
  }
};

TEST(QuantKernelsTest, LinearOpMatchesReferenceForEveryFormatAndRowCount) {
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t N = 37;  // not a multiple of four: MatVec's last group is short
  for (DType dtype : kBlockTypes) {
    const int64_t K = 3 * 256;  // whole blocks of every format
    std::vector<float> source(static_cast<size_t>(N * K));
    for (float& v : source) v = normal(rng);
    const int64_t row_bytes = DTypeBytes(dtype, K);
    std::vector<uint8_t> w(static_cast<size_t>(N * row_bytes));
    for (int64_t n = 0; n < N; ++n) QuantizeRow(dtype, source.data() + n * K, K, w.data() + n * row_bytes);
    std::vector<float> dequantized(source.size());
    DequantizeRow(dtype, w.data(), N * K, dequantized.data());
    for (const DotKernels* table : SupportedDotKernels()) {
      for (int64_t rows : {1, 2, 5, 9, 70}) {  // 70: more than one 64-row activation tile
        std::vector<float> x(static_cast<size_t>(rows * K)), y(static_cast<size_t>(rows * N), 0.0f);
        for (float& v : x) v = normal(rng);
        OpRun run(OpKind::kLinear, table);
        run.context.inputs[0] = {x.data(), DType::kF32, rows, K};
        run.context.inputs[1] = {w.data(), dtype, N, K};
        run.context.output = {y.data(), DType::kF32, rows, N};
        KernelFor(OpKind::kLinear)(run.context);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t n = 0; n < N; ++n) {
            double want = 0, magnitude = 0;
            for (int64_t i = 0; i < K; ++i) {
              want += static_cast<double>(x[static_cast<size_t>(r * K + i)]) * dequantized[static_cast<size_t>(n * K + i)];
              magnitude += std::abs(static_cast<double>(x[static_cast<size_t>(r * K + i)]) * dequantized[static_cast<size_t>(n * K + i)]);
            }
            ASSERT_NEAR(y[static_cast<size_t>(r * N + n)], want, 2e-5 * magnitude + 1e-6)
                << table->isa << " " << DTypeName(dtype) << " rows=" << rows << " r=" << r << " n=" << n;
          }
        }
      }
    }
  }
}

TEST(QuantKernelsTest, EmbedOpDequantizesTheTokensRows) {
  std::mt19937 rng(29);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t vocab = 11, width = 256;
  for (DType dtype : kBlockTypes) {
    std::vector<float> source(static_cast<size_t>(vocab * width));
    for (float& v : source) v = normal(rng);
    std::vector<uint8_t> table(static_cast<size_t>(DTypeBytes(dtype, vocab * width)));
    QuantizeRow(dtype, source.data(), vocab * width, table.data());
    std::vector<float> dequantized(source.size());
    DequantizeRow(dtype, table.data(), vocab * width, dequantized.data());
    const std::vector<int32_t> ids = {3, 0, 10, 3, 7};
    std::vector<float> y(ids.size() * static_cast<size_t>(width));
    OpRun run(OpKind::kEmbed, &SelectDotKernels());
    run.op.attrs.scale = 16.0f;  // sqrt(H) for H = 256
    run.context.inputs[0] = {const_cast<int32_t*>(ids.data()), DType::kI32, static_cast<int64_t>(ids.size()), 1};
    run.context.inputs[1] = {table.data(), dtype, vocab, width};
    run.context.output = {y.data(), DType::kF32, static_cast<int64_t>(ids.size()), width};
    KernelFor(OpKind::kEmbed)(run.context);
    for (size_t t = 0; t < ids.size(); ++t) {
      for (int64_t j = 0; j < width; ++j) {
        // The same f32 value as the reference, times the same scale: exact.
        ASSERT_EQ(y[t * width + static_cast<size_t>(j)], dequantized[static_cast<size_t>(ids[t] * width + j)] * 16.0f)
            << DTypeName(dtype) << " token " << t << " element " << j;
      }
    }
  }
}

// ---- CheckOp: block formats where a kernel reads whole rows, a refusal by name elsewhere. ----

TEST(QuantKernelsTest, CheckOpAcceptsBlockWeightsForLinearEmbedAndMoe) {
  CpuBackend backend;
  for (DType dtype : kBlockTypes) {
    Graph graph;
    const int32_t ids = graph.AddInput("ids", DType::kI32, Shape{{Tokens()}});
    const int32_t table = graph.AddWeight("embed.weight", dtype, Shape{{Const(16), Const(256)}});
    const int32_t x = graph.AddOp(OpKind::kEmbed, "embed", {ids, table}, {}, DType::kF32, Shape{{Tokens(), Const(256)}});
    const int32_t w = graph.AddWeight("proj.weight", dtype, Shape{{Const(8), Const(256)}});
    graph.AddOp(OpKind::kLinear, "proj", {x, w}, {}, DType::kF32, Shape{{Tokens(), Const(8)}});
    for (const Op& op : graph.ops()) EXPECT_TRUE(backend.CheckOp(graph, op).ok()) << op.name << " " << DTypeName(dtype);
  }
}

TEST(QuantKernelsTest, CheckOpRefusesBlockWeightsForANormByName) {
  CpuBackend backend;
  Graph graph;
  const int32_t x = graph.AddInput("x", DType::kF32, Shape{{Tokens(), Const(256)}});
  const int32_t weight = graph.AddWeight("layers.0.input_layernorm.weight", DType::kQ4_0, Shape{{Const(256)}});
  OpAttrs attrs;
  attrs.group_size = 256;
  graph.AddOp(OpKind::kRmsNorm, "layers.0.input_norm", {x, weight}, attrs, DType::kF32, Shape{{Tokens(), Const(256)}});
  const Status status = backend.CheckOp(graph, graph.ops().back());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(status.error().message(), "cpu backend cannot run op 'layers.0.input_norm' (rms_norm): q4_0 weights");
}

}  // namespace
}  // namespace kiln::cpu
