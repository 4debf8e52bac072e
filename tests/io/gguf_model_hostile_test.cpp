// GGUF models that are valid GGUF but wrong as Gemma 4 (a key missing, a per-layer array of the
// wrong length, a tensor of the wrong shape or an unsupported type, inconsistent k_eq_v, names
// kiln would ignore): each is refused at load with the code and a message naming the key or
// tensor. Each case edits a copy of a llama.cpp-made fixture.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <unistd.h>

#include "engine/model_loader.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"

namespace kiln {
namespace {

std::string GgufFixture(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/gguf/" + name; }

// A metadata value as the writer takes it (recursing into arrays).
GgufWriterValue Copy(const GgufValue& value) {
  switch (value.type()) {
    case GgufValueType::kU8: return GgufWriterValue::U8(static_cast<uint8_t>(*value.AsUint64()));
    case GgufValueType::kI8: return GgufWriterValue::I8(static_cast<int8_t>(*value.AsInt64()));
    case GgufValueType::kU16: return GgufWriterValue::U16(static_cast<uint16_t>(*value.AsUint64()));
    case GgufValueType::kI16: return GgufWriterValue::I16(static_cast<int16_t>(*value.AsInt64()));
    case GgufValueType::kU32: return GgufWriterValue::U32(static_cast<uint32_t>(*value.AsUint64()));
    case GgufValueType::kI32: return GgufWriterValue::I32(static_cast<int32_t>(*value.AsInt64()));
    case GgufValueType::kU64: return GgufWriterValue::U64(*value.AsUint64());
    case GgufValueType::kI64: return GgufWriterValue::I64(*value.AsInt64());
    case GgufValueType::kF32: return GgufWriterValue::F32(static_cast<float>(*value.AsDouble()));
    case GgufValueType::kF64: return GgufWriterValue::F64(*value.AsDouble());
    case GgufValueType::kBool: return GgufWriterValue::Bool(*value.AsBool());
    case GgufValueType::kString: return GgufWriterValue::String(std::string(*value.AsString()));
    case GgufValueType::kArray: {
      std::vector<GgufWriterValue> elements;
      for (const GgufValue& element : value.Elements()) elements.push_back(Copy(element));
      return GgufWriterValue::Array(value.element_type(), std::move(elements));
    }
  }
  return GgufWriterValue::U8(0);
}

struct TensorEdit {
  std::string name;
  GgmlType type;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// A copy of a fixture with keys set or dropped and tensors replaced, added or dropped.
struct Edits {
  std::map<std::string, std::optional<GgufWriterValue>> keys;        // nullopt: drop
  std::map<std::string, std::optional<TensorEdit>> tensors;          // nullopt: drop
  std::vector<TensorEdit> added;
};

class GgufModelHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("kiln_gguf_hostile_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& fixture, const Edits& edits) {
    auto file = GgufFile::Open(GgufFixture(fixture));
    EXPECT_TRUE(file.has_value()) << file.error().ToString();
    GgufWriter writer;
    for (const GgufMetadata::Entry& entry : file->metadata().entries()) {
      auto edit = edits.keys.find(entry.key);
      if (edit == edits.keys.end()) writer.Add(entry.key, Copy(entry.value));
      else if (edit->second) writer.Add(entry.key, *edit->second);
    }
    for (const auto& [key, value] : edits.keys) {
      if (value && !file->metadata().Has(key)) writer.Add(key, *value);
    }
    for (const GgufTensor& tensor : file->tensors()) {
      auto edit = edits.tensors.find(tensor.name);
      Status added = Status::Ok();
      if (edit == edits.tensors.end()) added = writer.AddTensor(tensor.name, tensor.type, tensor.shape, tensor.bytes());
      else if (edit->second) added = writer.AddTensor(edit->second->name, edit->second->type, edit->second->shape, edit->second->bytes);
      EXPECT_TRUE(added.ok()) << added.error().ToString();
    }
    for (const TensorEdit& tensor : edits.added) EXPECT_TRUE(writer.AddTensor(tensor.name, tensor.type, tensor.shape, tensor.bytes).ok());
    const std::string path = (dir_ / ("edited_" + std::to_string(++count_) + ".gguf")).string();
    EXPECT_TRUE(writer.WriteFile(path).ok());
    return path;
  }

  // The tensor of the fixture, to derive edits from.
  TensorEdit Tensor(const std::string& fixture, const std::string& name) {
    auto file = GgufFile::Open(GgufFixture(fixture));
    const GgufTensor* tensor = file->FindTensor(name);
    EXPECT_NE(tensor, nullptr) << name;
    return {tensor->name, tensor->type, tensor->shape, {tensor->bytes().begin(), tensor->bytes().end()}};
  }

  void ExpectRefused(const std::string& path, ErrorCode code, const std::vector<std::string>& fragments) {
    LoadOptions options;
    options.max_context = 64;
    options.max_tokens = 8;
    auto model = LoadedModel::Load(path, options);
    ASSERT_FALSE(model.has_value()) << "loaded; expected a refusal naming " << fragments.front();
    EXPECT_EQ(model.error().code(), code) << model.error().ToString();
    for (const std::string& fragment : fragments) {
      EXPECT_NE(model.error().message().find(fragment), std::string::npos) << "'" << fragment << "' not in: " << model.error().ToString();
    }
  }

  std::filesystem::path dir_;
  int count_ = 0;
};

TEST_F(GgufModelHostileTest, TheUneditedCopyLoads) {
  LoadOptions options;
  options.max_context = 64;
  options.max_tokens = 8;
  auto model = LoadedModel::Load(Write("g31b.f32.gguf", {}), options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  EXPECT_TRUE((*model)->NewSession().has_value());
}

TEST_F(GgufModelHostileTest, MissingRequiredKeysAreNamed) {
  for (const char* key : {"gemma4.block_count", "gemma4.embedding_length", "gemma4.context_length", "gemma4.attention.head_count",
                          "gemma4.attention.key_length", "gemma4.attention.key_length_swa", "gemma4.attention.sliding_window",
                          "gemma4.attention.sliding_window_pattern", "gemma4.attention.layer_norm_rms_epsilon",
                          "gemma4.embedding_length_per_layer_input", "gemma4.feed_forward_length", "general.architecture"}) {
    Edits edits;
    edits.keys[key] = std::nullopt;
    ExpectRefused(Write("g31b.f32.gguf", edits), ErrorCode::kNotFound, {key});
  }
}

TEST_F(GgufModelHostileTest, WrongKeyTypesAndLengthsAreNamed) {
  Edits wrong_type;
  wrong_type.keys["gemma4.attention.head_count_kv"] = GgufWriterValue::String("two");
  ExpectRefused(Write("g31b.f32.gguf", wrong_type), ErrorCode::kMalformed, {"gemma4.attention.head_count_kv"});

  Edits short_pattern;
  std::vector<GgufWriterValue> nine(9, GgufWriterValue::Bool(true));
  short_pattern.keys["gemma4.attention.sliding_window_pattern"] = GgufWriterValue::Array(GgufValueType::kBool, nine);
  ExpectRefused(Write("g31b.f32.gguf", short_pattern), ErrorCode::kMalformed, {"sliding_window_pattern", "9 entries"});

  Edits long_widths;
  long_widths.keys["gemma4.feed_forward_length"] = GgufWriterValue::I32Array(std::vector<int32_t>(11, 24));
  ExpectRefused(Write("g31b.f32.gguf", long_widths), ErrorCode::kMalformed, {"feed_forward_length", "11 entries"});

  Edits unequal;
  unequal.keys["gemma4.attention.value_length_swa"] = GgufWriterValue::U32(8);
  ExpectRefused(Write("g31b.f32.gguf", unequal), ErrorCode::kMalformed, {"value_length_swa 8"});

  Edits no_layers;
  no_layers.keys["gemma4.block_count"] = GgufWriterValue::U32(0);
  ExpectRefused(Write("g31b.f32.gguf", no_layers), ErrorCode::kMalformed, {"gemma4.block_count 0"});

  Edits huge;
  huge.keys["gemma4.block_count"] = GgufWriterValue::U32(4000000000u);
  ExpectRefused(Write("g31b.f32.gguf", huge), ErrorCode::kMalformed, {"gemma4.block_count 4000000000"});

  Edits other_arch;
  other_arch.keys["general.architecture"] = GgufWriterValue::String("llama");
  ExpectRefused(Write("g31b.f32.gguf", other_arch), ErrorCode::kUnsupported, {"general.architecture 'llama'", "gemma4"});
}

TEST_F(GgufModelHostileTest, TensorShapesMustMatchTheMetadata) {
  Edits narrow;
  TensorEdit q = Tensor("g31b.f32.gguf", "blk.0.attn_q.weight");  // {48, 64}
  q.shape = {48, 32};
  q.bytes.resize(48 * 32 * 4);
  narrow.tensors[q.name] = q;
  ExpectRefused(Write("g31b.f32.gguf", narrow), ErrorCode::kMalformed, {"blk.0.attn_q.weight", "ggml shape {48, 32}", "implies {48, 64}"});

  // A 1-D norm made 2-D keeps its element count but not its shape.
  Edits reshaped;
  TensorEdit norm = Tensor("g31b.f32.gguf", "output_norm.weight");
  norm.shape = {24, 2};
  reshaped.tensors[norm.name] = norm;
  ExpectRefused(Write("g31b.f32.gguf", reshaped), ErrorCode::kMalformed, {"output_norm.weight", "{24, 2}"});

  // The vocabulary is the embedding's rows, which the tokenizer must agree with.
  Edits fewer_tokens;
  std::vector<std::string> tokens;
  for (int i = 0; i < 500; ++i) tokens.push_back(std::to_string(i));
  fewer_tokens.keys["tokenizer.ggml.tokens"] = GgufWriterValue::StringArray(tokens);
  fewer_tokens.keys["tokenizer.ggml.scores"] = std::nullopt;
  fewer_tokens.keys["tokenizer.ggml.token_type"] = std::nullopt;
  ExpectRefused(Write("g31b.f32.gguf", fewer_tokens), ErrorCode::kMalformed, {"token_embd.weight has 512 rows", "500 tokens"});
}

TEST_F(GgufModelHostileTest, MissingTensorsAreNamedInGgufTerms) {
  Edits edits;
  edits.tensors["blk.9.attn_k.weight"] = std::nullopt;
  ExpectRefused(Write("g31b.f32.gguf", edits), ErrorCode::kNotFound, {"blk.9.attn_k.weight", "{48, 64}"});
  Edits no_embedding;
  no_embedding.tensors["token_embd.weight"] = std::nullopt;
  ExpectRefused(Write("g31b.f32.gguf", no_embedding), ErrorCode::kNotFound, {"token_embd.weight"});
}

TEST_F(GgufModelHostileTest, UnsupportedTensorTypesAreNamed) {
  // attn_output {64, 48}: rows of 64 are whole iq4_nl blocks (32 elements, 18 bytes).
  Edits edits;
  TensorEdit o = Tensor("g31b.f32.gguf", "blk.0.attn_output.weight");
  o.type = GgmlType::kIq4_Nl;
  o.bytes.assign(64 / 32 * 18 * 48, 0);
  edits.tensors[o.name] = o;
  ExpectRefused(Write("g31b.f32.gguf", edits), ErrorCode::kUnsupported, {"blk.0.attn_output.weight", "iq4_nl"});
}

TEST_F(GgufModelHostileTest, KEqVMustHoldForEveryFullLayerOrNone) {
  // g31b's full layers 4 and 9 have no attn_v; giving layer 4 one makes them disagree.
  Edits edits;
  TensorEdit v = Tensor("g31b.f32.gguf", "blk.4.attn_k.weight");
  v.name = "blk.4.attn_v.weight";
  edits.added.push_back(v);
  ExpectRefused(Write("g31b.f32.gguf", edits), ErrorCode::kMalformed, {"full layer 4 has attn_v", "full layer 9 has none"});
}

TEST_F(GgufModelHostileTest, TensorsKilnWouldIgnoreAreRefused) {
  Edits scale;
  scale.added.push_back({"blk.0.attn_q.scale", GgmlType::kF32, {1}, std::vector<uint8_t>(4, 0)});
  ExpectRefused(Write("g31b.f32.gguf", scale), ErrorCode::kUnsupported, {"blk.0.attn_q.scale"});

  Edits vision;
  vision.added.push_back({"v.patch_embd.weight", GgmlType::kF32, {4}, std::vector<uint8_t>(16, 0)});
  ExpectRefused(Write("g31b.f32.gguf", vision), ErrorCode::kUnsupported, {"v.patch_embd.weight"});

  Edits beyond;
  TensorEdit q = Tensor("g31b.f32.gguf", "blk.0.attn_q.weight");
  q.name = "blk.12.attn_q.weight";
  beyond.added.push_back(q);
  ExpectRefused(Write("g31b.f32.gguf", beyond), ErrorCode::kMalformed, {"blk.12.attn_q.weight"});

  Edits split_experts;
  TensorEdit fused = Tensor("a26b.f32.gguf", "blk.0.ffn_gate_up_exps.weight");
  fused.name = "blk.0.ffn_gate_exps.weight";
  split_experts.tensors["blk.0.ffn_gate_up_exps.weight"] = fused;
  ExpectRefused(Write("a26b.f32.gguf", split_experts), ErrorCode::kUnsupported, {"blk.0.ffn_gate_exps.weight", "fused"});
}

TEST_F(GgufModelHostileTest, RopeFrequencyFactorsAreRefused) {
  // The converter writes 1.0 for the 4 rotated frequencies and 1e30 for the other 12.
  Edits edits;
  TensorEdit freqs = Tensor("g31b.f32.gguf", "rope_freqs.weight");
  const float scaled = 0.5f;
  std::memcpy(freqs.bytes.data() + 4, &scaled, 4);
  edits.tensors[freqs.name] = freqs;
  ExpectRefused(Write("g31b.f32.gguf", edits), ErrorCode::kUnsupported, {"rope_freqs.weight[1]"});

  Edits wrong_length;
  TensorEdit longer = Tensor("g31b.f32.gguf", "rope_freqs.weight");
  longer.shape = {8};
  longer.bytes.resize(32);
  wrong_length.tensors[longer.name] = longer;
  ExpectRefused(Write("g31b.f32.gguf", wrong_length), ErrorCode::kMalformed, {"rope_freqs.weight", "[16]"});
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// MTP drafter files (gemma4-assistant, ImportGemma4AssistantGguf), loaded as e2b's assistant: a
// missing key, a tensor a drafter does not have.
TEST_F(GgufModelHostileTest, AssistantFileRefusalsAreNamed) {
  auto refused = [&](const std::string& path, ErrorCode code, const std::string& fragment) {
    LoadOptions options;
    options.max_context = 64;
    options.max_tokens = 8;
    options.assistant = path;
    auto model = LoadedModel::Load(std::string(KILN_FIXTURES_DIR) + "/e2b", options);
    ASSERT_FALSE(model.has_value()) << "loaded; expected a refusal naming " << fragment;
    EXPECT_EQ(model.error().code(), code) << model.error().ToString();
    EXPECT_NE(model.error().message().find(fragment), std::string::npos) << model.error().ToString();
  };
  const std::string fixture = "e2b-mtp_copy_centroid.f32.gguf";
  for (const char* key : {"gemma4-assistant.embedding_length_out", "gemma4-assistant.block_count", "gemma4-assistant.attention.key_length"}) {
    Edits edits;
    edits.keys[key] = std::nullopt;
    refused(Write(fixture, edits), ErrorCode::kNotFound, key);
  }
  Edits key_projection;
  TensorEdit k = Tensor(fixture, "blk.0.attn_q.weight");
  k.name = "blk.0.attn_k.weight";
  key_projection.added.push_back(k);
  refused(Write(fixture, key_projection), ErrorCode::kUnsupported, "tensor 'blk.0.attn_k.weight' is not part of the Gemma 4 MTP drafter");
  Edits no_projection;
  no_projection.tensors["nextn.pre_projection.weight"] = std::nullopt;
  refused(Write(fixture, no_projection), ErrorCode::kNotFound, "mtp.pre_projection.weight");
  // Half a centroid head; a float token ordering.
  Edits half_head;
  half_head.added.push_back({"masked_embd_ordering", GgmlType::kI32, {512}, std::vector<uint8_t>(512 * 4, 0)});
  refused(Write(fixture, half_head), ErrorCode::kMalformed, "needs both masked_embd_centroids.weight and masked_embd_ordering");
  Edits float_ordering;
  float_ordering.added.push_back({"masked_embd_centroids.weight", GgmlType::kF32, {64, 16}, std::vector<uint8_t>(64 * 16 * 4, 0)});
  float_ordering.added.push_back({"masked_embd_ordering", GgmlType::kF32, {512}, std::vector<uint8_t>(512 * 4, 0)});
  refused(Write(fixture, float_ordering), ErrorCode::kMalformed, "masked_embd_ordering is f32; token ids are i32");
}

}  // namespace
}  // namespace kiln
