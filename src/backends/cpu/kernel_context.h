// What a CPU kernel receives: its op, resolved tensors for this step, scratch, the KV caches and
// the thread pool. Shapes were checked at compile time (Graph::Validate, CpuBackend::CheckOp);
// kernels trust them.
#pragma once

#include <array>
#include <cstdint>

#include "backends/cpu/simd/dot.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "graph/graph.h"

namespace kiln::cpu {

struct TensorArg {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;     // first dim (resolved for this step's T)
  int64_t columns = 0;  // product of the remaining dims
  float* f32() const { return static_cast<float*>(data); }
  const int32_t* i32() const { return static_cast<const int32_t*>(data); }
};

// One layer's K and V in the block pool: [blocks * block_size, num_kv_heads * head_dim] each, f32.
// A sequence's position p lives in slot p (full layers) or p % capacity (sliding rings); slot s
// is row block_table[table_offset + s / block_size] * block_size + s % block_size.
struct KvCache {
  float* k = nullptr;
  float* v = nullptr;
  int64_t block_size = 0;
  int64_t table_offset = 0;  // this layer's group within a block table row
  int64_t capacity_positions = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t window = 0;  // > 0: a ring indexed by position modulo capacity
  int64_t Slot(int64_t position) const { return window > 0 ? position % capacity_positions : position; }
  int64_t Row(const int32_t* table, int64_t position) const {
    const int64_t slot = Slot(position);
    return static_cast<int64_t>(table[table_offset + slot / block_size]) * block_size + slot % block_size;
  }
};

inline constexpr int kMaxKernelInputs = 7;

struct KernelContext {
  const Op* op = nullptr;
  std::array<TensorArg, kMaxKernelInputs> inputs{};
  TensorArg output;
  float* scratch = nullptr;   // scratch_bytes from CpuBackend::ScratchBytes, or nullptr
  int64_t tokens = 0;         // T of this step
  int64_t rows = 0;           // R of this step
  KvCache* caches = nullptr;  // indexed by op->attrs.cache_index
  const int32_t* block_tables = nullptr;  // S rows of table_stride block ids
  int64_t table_stride = 0;
  const int32_t* TableOf(int32_t sequence) const { return block_tables + sequence * table_stride; }
  ThreadPool* pool = nullptr;
  const DotKernels* dot = nullptr;
};

using KernelFn = void (*)(const KernelContext& context);

// The kernel for each op kind (a switch with no default: a missing kernel does not compile).
KernelFn KernelFor(OpKind kind);
// Whether the kernel of `kind` reads weight input `input` by whole rows (linear, embed, MoE
// experts), so the weight may be in a block format; the others read weights element by element
// (WeightAt) and CheckOp refuses block formats for them by name.
bool ReadsBlockRows(OpKind kind, size_t input);

// Kernels, one per op kind, in kernels/*.cpp.
void EmbedKernel(const KernelContext& c);
void RmsNormKernel(const KernelContext& c);
void RopeKernel(const KernelContext& c);
void LinearKernel(const KernelContext& c);
void KvAppendKernel(const KernelContext& c);
void AttentionKernel(const KernelContext& c);
void AddKernel(const KernelContext& c);
void MulKernel(const KernelContext& c);
void ScaleKernel(const KernelContext& c);
void ScaleByWeightKernel(const KernelContext& c);
void GeluMulKernel(const KernelContext& c);
void SoftcapKernel(const KernelContext& c);
void SliceColumnsKernel(const KernelContext& c);
void ConcatColumnsKernel(const KernelContext& c);
void GatherRowsKernel(const KernelContext& c);
void MoeKernel(const KernelContext& c);
void CentroidHeadKernel(const KernelContext& c);

// y[n] = w[offset + n * columns : ... + columns] . x for n in [0, rows): one activation row
// against a row-major weight of any dtype, parallel over weight rows (linear.cpp). For a block
// format, `element_offset` is the start of a row.
void MatVec(const KernelContext& c, const float* x, const TensorArg& w, int64_t element_offset, int64_t rows,
            int64_t columns, float* y);

// The int8-activation path of block-format weights (quant_int8.h). QuantizeActivations rounds
// `rows` rows of x (k floats, rows k apart) into `scratch` (Int8ScratchBytes(dtype, rows, k)
// bytes) and returns it, or returns nullptr when there is no scratch or the table has no int8
// kernel for `dtype`: the caller then takes the f32 path (MatVec). MatVecInt8 is MatVec on one
// such row.
int64_t Int8ScratchBytes(DType dtype, int64_t rows, int64_t k);
// The MoE kernel's f32 / i32 scratch (moe.cpp), 64-byte aligned; its int8 rows follow.
inline int64_t MoeFloatScratchBytes(int64_t experts, int64_t width, int64_t hidden) {
  return ((experts + 3 * width + hidden) * 4 + experts * 4 + 63) / 64 * 64;
}
const void* QuantizeActivations(const KernelContext& c, DType dtype, const float* x, int64_t rows, int64_t k, void* scratch);
void MatVecInt8(const KernelContext& c, const void* xq, const TensorArg& w, int64_t element_offset, int64_t rows,
                int64_t columns, float* y);

// The centroid head's scratch (centroid_head.cpp): one x row rounded to int8, then the kept logits.
int64_t CentroidHeadScratchBytes(DType head_dtype, int64_t hidden, int64_t kept);

// Scalar value of element i of a weight of an element dtype (block formats: see ReadsBlockRows).
float WeightAt(const TensorArg& weight, int64_t index);

// Attention processes keys in blocks of this many positions with an online softmax.
inline constexpr int64_t kAttentionBlock = 256;
// Largest head_dim / 2 the RoPE kernel handles (CheckOp refuses larger).
inline constexpr int64_t kMaxRopeFrequencies = 1024;

}  // namespace kiln::cpu
