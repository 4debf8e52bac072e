// Packing a weight: its source bytes converted to the dtype the Program stores it in.
//
// The one conversion both paths run: JIT (LoadedModel packs at load and hands the packed bytes
// to the backend) and AOT (kiln compile writes the same bytes into the artifact), so their
// weights are bit-identical. Each row is widened to f32 (exact for f32, bf16 and f16 sources)
// and stored with QuantizeRow (core/quant.h); rows are independent, so the result does not
// depend on how many threads pack it.
//
//   std::vector<uint8_t> out(PackedWeightBytes(binding));
//   TRY(PackWeight(binding, source_bytes, out, &pool));
#pragma once

#include <cstdint>
#include <span>

#include "compiler/program.h"
#include "core/thread_pool.h"

namespace kiln {

// Bytes of `weight` stored in its dtype (WeightBinding::size_bytes), or -1 for a shape whose
// rows are not whole blocks of it.
int64_t PackedWeightBytes(const WeightBinding& weight);

// Converts `source` (the weight in weight.source_dtype, as the checkpoint stores it) into `out`
// (PackedWeightBytes bytes) in weight.dtype, spreading rows over `pool` (nullptr: this thread).
// kInvalidArgument when a size does not match the binding or a dtype cannot be converted (an
// integer or block-format source).
Status PackWeight(const WeightBinding& weight, std::span<const uint8_t> source, std::span<uint8_t> out, ThreadPool* pool);

}  // namespace kiln
