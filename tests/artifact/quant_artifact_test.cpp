// Quantized weights in .kiln files: JIT packing and `kiln compile --quant` give the same bytes
// (and logits) for every recipe on the bundled model, the recipe is recorded in the program
// and the header, a fallback to the source keeps it, a recipe on an artifact is refused, and a
// program whose dtypes no recipe explains does not decode.
#include <gtest/gtest.h>

#include <cstring>

#include "artifact/program_codec.h"
#include "artifact_fixture.h"

namespace kiln {
namespace {

using testing::ArtifactTest;
using testing::ReadBytes;
using testing::SmallBounds;
using testing::WriteBytes;
namespace fs = std::filesystem;

// models/brown-gemma4: hidden 384 and intermediate 1152 are whole 32- and 128-element blocks
// but not whole 256-element ones, so K-quants fall back on most matrices (not the full layers'
// o_proj, whose rows are 6 heads x 128 = 768).
const std::string kBrownModel = KILN_BROWN_MODEL_DIR;

constexpr QuantRecipe kRecipes[] = {QuantRecipe::kQ8_0, QuantRecipe::kQ4_0, QuantRecipe::kQ4_K_M, QuantRecipe::kQ6_K, QuantRecipe::kFp8};

LoadOptions WithRecipe(QuantRecipe recipe) {
  LoadOptions options = SmallBounds();
  options.quant = recipe;
  return options;
}

class QuantArtifactTest : public ArtifactTest {
 protected:
  fs::path CompileWith(QuantRecipe recipe, const std::string& name = "model.kiln") {
    ArtifactCompileOptions options;
    options.target = ParseTarget("cpu").value();
    options.load = WithRecipe(recipe);
    const fs::path out = dir_ / name;
    Status status = CompileArtifact(kBrownModel, out.string(), options);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return out;
  }
};

TEST_F(QuantArtifactTest, JitAndAotWeightsAreBitIdenticalForEveryRecipe) {
  for (QuantRecipe recipe : kRecipes) {
    SCOPED_TRACE(QuantRecipeName(recipe));
    auto jit = LoadedModel::Load(kBrownModel, WithRecipe(recipe));
    ASSERT_TRUE(jit.has_value()) << jit.error().ToString();
    ASSERT_TRUE((*jit)->PackWeights().ok());
    const fs::path path = CompileWith(recipe);
    auto aot = LoadedModel::Load(path.string(), SmallBounds());
    ASSERT_TRUE(aot.has_value()) << aot.error().ToString();
    const Program &a = (*jit)->program(), &b = (*aot)->program();
    EXPECT_EQ(a.quant_recipe, recipe);
    EXPECT_EQ(b.quant_recipe, recipe);
    EXPECT_EQ((*aot)->artifact()->header().quant_recipe, recipe);
    ASSERT_EQ(a.weights.size(), b.weights.size());
    const auto jit_bytes = (*jit)->WeightBytes(), aot_bytes = (*aot)->WeightBytes();
    int64_t packed = 0;
    for (size_t i = 0; i < a.weights.size(); ++i) {
      EXPECT_EQ(a.weights[i].dtype, b.weights[i].dtype) << a.weights[i].name;
      EXPECT_EQ(b.weights[i].source_dtype, DType::kBF16) << a.weights[i].name;
      ASSERT_EQ(jit_bytes[i].size(), static_cast<size_t>(a.weights[i].size_bytes())) << a.weights[i].name;
      ASSERT_EQ(jit_bytes[i].size(), aot_bytes[i].size()) << a.weights[i].name;
      EXPECT_EQ(std::memcmp(jit_bytes[i].data(), aot_bytes[i].data(), jit_bytes[i].size()), 0) << a.weights[i].name;
      packed += IsBlockDType(a.weights[i].dtype);
    }
    // Every matrix of the eight layers: q, k, v, o, gate, up, down on the six sliding ones, no
    // v_proj on the two full ones (k_eq_v); and the embedding under every recipe but fp8, which
    // keeps it at source precision.
    EXPECT_EQ(packed, 6 * 7 + 2 * 6 + (recipe == QuantRecipe::kFp8 ? 0 : 1));
    int64_t source_bytes = 0;
    for (const WeightBinding& w : b.weights) source_bytes += static_cast<int64_t>((*jit)->SourceWeightBytes(&w - b.weights.data()).size());
    EXPECT_LT(b.weight_bytes(), source_bytes);
  }
}

TEST_F(QuantArtifactTest, BrownModelDTypesFollowTheRecipeAndItsFallbacks) {
  auto model = LoadedModel::Load(kBrownModel, WithRecipe(QuantRecipe::kQ4_K_M));
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  for (const WeightBinding& w : (*model)->program().weights) {
    if (w.name == "embed_tokens.weight") {
      EXPECT_EQ(w.dtype, DType::kQ8_0) << "q6_k needs rows of 256k; 384 is not";
    }
    if (w.name == "layers.3.self_attn.o_proj.weight") {
      EXPECT_EQ(w.dtype, DType::kQ4_K) << "rows of 768 are whole q4_k blocks";
    }
    if (w.name == "layers.0.self_attn.q_proj.weight") {
      EXPECT_EQ(w.dtype, DType::kQ5_0) << "q4_k falls back to q5_0, as llama-quantize's";
    }
    // use_more_bits(0, 8): layer 0's down_proj wants q6_k; rows of 1152 make it q8_0.
    if (w.name == "layers.0.mlp.down_proj.weight") {
      EXPECT_EQ(w.dtype, DType::kQ8_0);
    }
    if (w.name == "layers.1.mlp.down_proj.weight") {
      EXPECT_EQ(w.dtype, DType::kQ5_0);
    }
    if (w.shape.size() == 1) {
      EXPECT_EQ(w.dtype, DType::kBF16) << w.name;
    }
  }
}

// Logits over a prompt and a few decode steps.
std::vector<float> Logits(LoadedModel& model) {
  auto session = model.NewSession(2);
  EXPECT_TRUE(session.has_value()) << session.error().ToString();
  if (!session) return {};
  const std::vector<int32_t> prompt = {2, 302, 334, 2540, 439};
  auto logits = session->Prefill(prompt, /*all_positions=*/true);
  EXPECT_TRUE(logits.has_value());
  std::vector<float> all = *logits;
  for (int32_t token : {828, 4301}) {
    auto step = session->Step({&token, 1});
    EXPECT_TRUE(step.has_value());
    all.insert(all.end(), step->begin(), step->end());
  }
  return all;
}

TEST_F(QuantArtifactTest, JitAndAotLogitsAreBitIdentical) {
  for (QuantRecipe recipe : {QuantRecipe::kQ4_K_M, QuantRecipe::kFp8}) {
    auto jit = LoadedModel::Load(kBrownModel, WithRecipe(recipe));
    auto aot = LoadedModel::Load(CompileWith(recipe).string(), SmallBounds());
    ASSERT_TRUE(jit.has_value() && aot.has_value());
    const std::vector<float> a = Logits(**jit), b = Logits(**aot);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << QuantRecipeName(recipe) << ": JIT and AOT logits differ";
  }
}

TEST_F(QuantArtifactTest, ARecipeOnAnArtifactIsRefused) {
  const fs::path path = CompileWith(QuantRecipe::kQ4_0);
  const std::string error = LoadError(path, WithRecipe(QuantRecipe::kQ8_0));
  EXPECT_EQ(error, "invalid argument: --quant q8_0 applies to checkpoints, but " + path.string() +
                       " is a compiled .kiln artifact (weights quantized with q4_0); drop --quant, or compile its checkpoint "
                       "with `kiln compile SOURCE --quant q8_0`");
}

TEST_F(QuantArtifactTest, AFallbackToTheSourceKeepsTheFilesRecipe) {
  const fs::path path = CompileWith(QuantRecipe::kQ6_K);
  std::vector<uint8_t> bytes = ReadBytes(path);
  const uint64_t newer = 9;
  std::memcpy(bytes.data() + 8, &newer, 8);
  WriteBytes(path, bytes);
  std::string notice;
  LoadOptions options = SmallBounds();
  options.on_notice = [&](const std::string& text) { notice = text; };
  auto model = LoadedModel::Load(path.string(), options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  EXPECT_EQ((*model)->artifact(), nullptr);
  EXPECT_NE(notice.find("compiling from the source checkpoint"), std::string::npos) << notice;
  EXPECT_EQ((*model)->program().quant_recipe, QuantRecipe::kQ6_K);
}

TEST_F(QuantArtifactTest, AProgramWhoseDTypesNoRecipeExplainsDoesNotDecode) {
  auto model = LoadedModel::Load(kBrownModel, WithRecipe(QuantRecipe::kQ8_0));
  ASSERT_TRUE(model.has_value());
  Program program = (*model)->program();
  const std::vector<uint64_t> offsets(program.weights.size(), 0);
  CpuBackend backend;
  auto decoded = DecodeProgram(EncodeProgram(program, offsets), backend);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(decoded->program.quant_recipe, QuantRecipe::kQ8_0);
  for (size_t i = 0; i < program.weights.size(); ++i) {
    EXPECT_EQ(decoded->program.weights[i].dtype, program.weights[i].dtype);
    EXPECT_EQ(decoded->program.weights[i].source_dtype, program.weights[i].source_dtype);
  }
  program.quant_recipe = QuantRecipe::kNone;
  auto unexplained = DecodeProgram(EncodeProgram(program, offsets), backend);
  ASSERT_FALSE(unexplained.has_value());
  EXPECT_EQ(unexplained.error().message(),
            "program section: weight 'embed_tokens.weight' is stored as q8_0 from a bf16 source, which no recipe of this program packs");
}

}  // namespace
}  // namespace kiln
