#include "compiler/weight_packing.h"

#include <vector>

#include "core/quant.h"

namespace kiln {

int64_t PackedWeightBytes(const WeightBinding& weight) {
  if (weight.shape.empty() || !DTypeRowsFit(weight.dtype, weight.shape.back())) return -1;
  return weight.size_bytes();
}

Status PackWeight(const WeightBinding& weight, std::span<const uint8_t> source, std::span<uint8_t> out, ThreadPool* pool) {
  const DType from = weight.source_dtype, to = weight.dtype;
  if (from != DType::kF32 && from != DType::kBF16 && from != DType::kF16) {
    return Error(ErrorCode::kInvalidArgument, "weight '" + weight.name + "' is stored as " + DTypeName(from) +
                                                  " in the source; only f32, bf16 and f16 weights are packed");
  }
  if (to == DType::kI32) return Error(ErrorCode::kInvalidArgument, "weight '" + weight.name + "' cannot be packed as i32");
  int64_t elements = 1;
  for (int64_t d : weight.shape) elements *= d;
  const int64_t row_elements = weight.shape.empty() ? 1 : weight.shape.back();
  const int64_t packed_bytes = PackedWeightBytes(weight);
  if (packed_bytes < 0) {
    return Error(ErrorCode::kInvalidArgument, "weight '" + weight.name + "' has rows of " + std::to_string(row_elements) +
                                                  " elements, not whole " + DTypeName(to) + " blocks");
  }
  if (static_cast<int64_t>(source.size()) != DTypeBytes(from, elements) || static_cast<int64_t>(out.size()) != packed_bytes) {
    return Error(ErrorCode::kInvalidArgument, "weight '" + weight.name + "': " + std::to_string(source.size()) + " source bytes and " +
                                                  std::to_string(out.size()) + " packed bytes do not match its shape");
  }
  const int64_t rows = row_elements > 0 ? elements / row_elements : 0;
  const int64_t source_row_bytes = DTypeBytes(from, row_elements), packed_row_bytes = DTypeBytes(to, row_elements);
  auto pack_rows = [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(row_elements));
    for (int64_t r = begin; r < end; ++r) {
      DequantizeRow(from, source.data() + r * source_row_bytes, row_elements, row.data());
      QuantizeRow(to, row.data(), row_elements, out.data() + r * packed_row_bytes);
    }
  };
  if (pool) {
    pool->ParallelFor(rows, pack_rows, /*min_grain=*/16);
  } else {
    pack_rows(0, rows);
  }
  return Status::Ok();
}

}  // namespace kiln
