#include "random_model.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <random>

#include "backends/cpu/kernel_context.h"
#include "compiler/memory_planner.h"
#include "compiler/program.h"
#include "core/quant.h"
#include "engine/model_loader.h"
#include "io/safetensors_writer.h"

namespace kiln {

namespace fs = std::filesystem;

// Writes config.json and random bf16 weights for `config` into `dir`.
Status WriteRandomModel(const fs::path& dir, const nlohmann::json& config) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  LoadOptions options;
  options.max_tokens = 1;
  options.max_context = 16;
  TRY_ASSIGN(auto planned, LoadedModel::Load((dir / "config.json").string(), options));
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<std::vector<uint8_t>> storage;
  std::vector<TensorToWrite> tensors;
  for (const WeightBinding& weight : planned->program().weights) {
    const bool is_norm = weight.name.find("norm") != std::string::npos || weight.name.find("scal") != std::string::npos;
    std::vector<uint8_t> bytes(static_cast<size_t>(weight.size_bytes()));
    uint16_t* values = reinterpret_cast<uint16_t*>(bytes.data());
    for (size_t i = 0; i < bytes.size() / 2; ++i) values[i] = F32ToBf16(is_norm ? 1.0f + normal(rng) : normal(rng));
    storage.push_back(std::move(bytes));
    tensors.push_back({"model." + weight.name, "BF16", weight.shape, storage.back()});
  }
  return WriteSafetensors((dir / "model.safetensors").string(), tensors);
}

int64_t ParameterCount(const Program& program) {
  int64_t total = 0;
  for (const WeightBinding& weight : program.weights) {
    int64_t elements = 1;
    for (int64_t dim : weight.shape) elements *= dim;
    total += elements;
  }
  return total;
}

Result<std::unique_ptr<RandomQuantizedModel>> RandomQuantizedModel::Create(const fs::path& scratch_dir,
                                                                          const nlohmann::json& config, DType weight_dtype,
                                                                          const LoadOptions& bounds,
                                                                          const fs::path& dequantized_dir) {
  TRY(WriteRandomModel(scratch_dir, config));
  LoadOptions load = bounds;
  load.device = "cpu";
  load.plan_only = true;
  TRY_ASSIGN(auto source, LoadedModel::Load(scratch_dir.string(), load));
  auto model = std::make_unique<RandomQuantizedModel>();
  Program& program = model->program_;
  program = source->program();
  const std::vector<std::span<const uint8_t>> source_bytes = source->WeightBytes();

  // A weight is quantized when every op reading it reads it by rows and its rows are whole blocks.
  std::map<std::string, size_t> index_of;
  std::vector<bool> quantize(program.weights.size(), true);
  for (size_t i = 0; i < program.weights.size(); ++i) {
    index_of[program.weights[i].name] = i;
    const std::vector<int64_t>& shape = program.weights[i].shape;
    if (shape.size() < 2 || !DTypeRowsFit(weight_dtype, shape.back())) quantize[i] = false;
  }
  for (const StepFunction& step : program.steps) {
    for (const Op& op : step.graph.ops()) {
      for (size_t input = 0; input < op.inputs.size(); ++input) {
        if (op.inputs[input] < 0) continue;
        const Value& value = step.graph.value(op.inputs[input]);
        if (value.kind == ValueKind::kWeight && !cpu::ReadsBlockRows(op.kind, input)) quantize[index_of.at(value.name)] = false;
      }
    }
  }

  std::vector<std::vector<uint8_t>> dequantized(program.weights.size());
  std::vector<TensorToWrite> reference;
  for (size_t i = 0; i < program.weights.size(); ++i) {
    WeightBinding& weight = program.weights[i];
    std::vector<uint8_t>& bytes = model->weights_.emplace_back(source_bytes[i].begin(), source_bytes[i].end());
    if (!quantize[i]) {
      reference.push_back({weight.tensor_name, "BF16", weight.shape, bytes});
      continue;
    }
    const int64_t elements = static_cast<int64_t>(source_bytes[i].size() / 2);
    std::vector<float> values(static_cast<size_t>(elements));
    DequantizeRow(DType::kBF16, source_bytes[i].data(), elements, values.data());
    bytes.assign(static_cast<size_t>(DTypeBytes(weight_dtype, elements)), 0);
    QuantizeRow(weight_dtype, values.data(), elements, bytes.data());
    weight.dtype = weight_dtype;
    if (!dequantized_dir.empty()) {
      dequantized[i].resize(static_cast<size_t>(elements) * 4);
      DequantizeRow(weight_dtype, bytes.data(), elements, reinterpret_cast<float*>(dequantized[i].data()));
      reference.push_back({weight.tensor_name, "F32", weight.shape, dequantized[i]});
    }
  }
  // The graphs name the bindings' dtypes, and the backend is asked again about every op.
  for (StepFunction& step : program.steps) {
    for (Value& value : step.graph.mutable_values()) {
      if (value.kind == ValueKind::kWeight) value.dtype = program.weights[index_of.at(value.name)].dtype;
    }
    for (const Op& op : step.graph.ops()) TRY(model->backend_.CheckOp(step.graph, op));
  }
  // Planned again, as the compiler plans a quantized program: the backend's scratch depends on
  // the weights' dtypes (the CPU's int8 activation rows for block formats).
  program.arena_bytes = 0;
  for (StepFunction& step : program.steps) {
    TRY(BuildRequests(step, model->backend_, program.max_context, step.guard_bytes));
    TRY(ApplyPlan(step, PlanMemory(step.requests, model->backend_.alignment_bytes()), model->backend_.alignment_bytes()));
    program.arena_bytes = std::max(program.arena_bytes, step.plan.arena_bytes);
  }
  source.reset();
  fs::remove_all(scratch_dir);
  if (!dequantized_dir.empty()) {
    fs::create_directories(dequantized_dir);
    std::ofstream(dequantized_dir / "config.json") << config.dump(2);
    TRY(WriteSafetensors((dequantized_dir / "model.safetensors").string(), reference));
  }
  return model;
}

Result<Session> RandomQuantizedModel::NewSession(int num_threads) {
  std::vector<WeightView> views;
  for (size_t i = 0; i < weights_.size(); ++i) {
    views.push_back({weights_[i].data(), program_.weights[i].dtype, static_cast<int64_t>(weights_[i].size())});
  }
  SessionOptions options;
  options.num_threads = num_threads;
  return Session::Create(program_, backend_, std::move(views), options);
}

nlohmann::json GemmaConfig(int64_t vocab, int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                           int64_t head_dim, int64_t global_head_dim, int64_t intermediate, int64_t window) {
  std::vector<std::string> types;
  for (int64_t i = 0; i < layers; ++i) types.push_back((i + 1) % 5 == 0 || i + 1 == layers ? "full_attention" : "sliding_attention");
  return {{"model_type", "gemma4_text"}, {"vocab_size", vocab}, {"hidden_size", hidden}, {"num_hidden_layers", layers},
          {"num_attention_heads", heads}, {"num_key_value_heads", kv_heads}, {"head_dim", head_dim},
          {"global_head_dim", global_head_dim}, {"num_global_key_value_heads", 1}, {"attention_k_eq_v", true},
          {"intermediate_size", intermediate}, {"sliding_window", window}, {"final_logit_softcapping", 30.0},
          {"hidden_size_per_layer_input", 0}, {"layer_types", types}, {"dtype", "bfloat16"}};
}


}  // namespace kiln
