// CUDA targets: `kiln compile --target cuda:sm_XX` needs no GPU (the CUDA backend's catalog plans
// without one) and gives the JIT Program; the artifact loads on the CUDA backend only, and on a
// machine without a usable GPU the error says so and names the source to run on the CPU. The KV
// cache element type is the target's choice: the decoder accepts f32 and bf16, the CPU backend
// refuses anything but f32. Runs anywhere; with a GPU it also checks AOT = JIT on the device.
#include <gtest/gtest.h>

#include <cstring>

#include "artifact/program_codec.h"
#include "artifact_fixture.h"

namespace kiln {
namespace {

using testing::ArtifactTest;
using testing::FixtureDir;
using testing::ReadBytes;
using testing::SmallBounds;
using testing::WriteBytes;
namespace fs = std::filesystem;

// Whether this kiln has the CUDA backend (its catalog compiles for cuda:sm_XX).
bool BuiltWithCuda() { return ParseTarget("cuda:sm_90").has_value(); }

// Whether a CUDA session can run here: loading for cuda, not just for planning, probes the GPU.
bool CudaDeviceHere() {
  LoadOptions options = SmallBounds();
  options.device = "cuda";
  return LoadedModel::Load(FixtureDir("g31b") + "/config.json", options).has_value();
}

std::string Absolute(const fs::path& path) { return fs::absolute(path).lexically_normal().string(); }

// The program section's bytes and their decoding (with its weight offsets).
struct ProgramSection {
  std::vector<uint8_t> bytes;
  uint64_t offset = 0;
  DecodedProgram decoded;
};

ProgramSection ReadProgramSection(const fs::path& path, const KernelCatalog& catalog) {
  ProgramSection section;
  const std::vector<uint8_t> file = ReadBytes(path);
  auto header = Artifact::ReadHeader(file, path.string());
  EXPECT_TRUE(header.has_value());
  const ArtifactSection* program = header->Find("program");
  section.offset = program->offset;
  section.bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(program->offset),
                       file.begin() + static_cast<std::ptrdiff_t>(program->offset + program->size));
  auto decoded = DecodeProgram(section.bytes, catalog);
  EXPECT_TRUE(decoded.has_value()) << decoded.error().ToString();
  if (decoded) section.decoded = std::move(*decoded);
  return section;
}

class CudaTargetTest : public ArtifactTest {
 protected:
  void SetUp() override {
    ArtifactTest::SetUp();
    if (!BuiltWithCuda()) GTEST_SKIP() << "this kiln was built without the CUDA backend";
  }

  // Replaces the program section with `program` (same length) and fixes its checksum.
  void ReplaceProgramSection(const fs::path& path, const ProgramSection& old, const std::vector<uint8_t>& program) {
    ASSERT_EQ(program.size(), old.bytes.size());
    std::vector<uint8_t> file = ReadBytes(path);
    std::copy(program.begin(), program.end(), file.begin() + static_cast<std::ptrdiff_t>(old.offset));
    WriteBytes(path, file);
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(HashBytes(program.data(), program.size())));
    RewriteHeader(path, [&](nlohmann::ordered_json& header) {
      for (auto& section : header["sections"]) {
        if (section["name"] == "program") section["checksum"] = hex;
      }
    });
  }
};

TEST(CudaTargetParseTest, MalformedCudaTargetsAreRefused) {
  for (const std::string text : {"cuda:sm90", "cuda:sm_", "cuda:sm_9", "cuda:sm_9x", "cuda:90", "cuda:sm_1000", "cuda:"}) {
    auto target = ParseTarget(text);
    ASSERT_FALSE(target.has_value()) << text;
    EXPECT_EQ(target.error().code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_EQ(target.error().message(), "malformed CUDA target '" + text + "' (expected cuda:sm_XX, e.g. cuda:sm_90 for H100/H200)");
  }
}

TEST(CudaTargetParseTest, NamedSmNeedsNoGpuPlainCudaNeedsOne) {
  auto named = ParseTarget("cuda:sm_90");
  if (!BuiltWithCuda()) {
    ASSERT_FALSE(named.has_value());
    EXPECT_EQ(named.error().code(), ErrorCode::kUnsupported);
    EXPECT_NE(named.error().message().find("built without the CUDA backend"), std::string::npos);
    return;
  }
  ASSERT_TRUE(named.has_value());
  EXPECT_EQ(named->kind, "cuda");
  EXPECT_EQ(named->cuda_sm, 90);
  EXPECT_GT(named->cuda_min_driver, 0);  // the CUDA runtime kiln was built with
  EXPECT_EQ(named->ToString(), "cuda sm_90");
  auto local = ParseTarget("cuda");
  if (CudaDeviceHere()) {
    ASSERT_TRUE(local.has_value());
    EXPECT_GT(local->cuda_sm, 0);
  } else {
    ASSERT_FALSE(local.has_value());
    EXPECT_EQ(local.error().code(), ErrorCode::kDeviceUnavailable);
    const std::string& message = local.error().message();
    EXPECT_EQ(message.rfind("--target cuda compiles for this machine's GPU, but ", 0), 0u) << message;
    EXPECT_TRUE(message.ends_with("; name the target, e.g. --target cuda:sm_90")) << message;
  }
}

TEST_F(CudaTargetTest, CompilesWithoutAGpuDeterministicallyToTheJitProgram) {
  const fs::path first = Compile(FixtureDir("g31b"), "cuda:sm_90", "a.kiln");
  const fs::path second = Compile(FixtureDir("g31b"), "cuda:sm_90", "b.kiln");
  EXPECT_EQ(ReadBytes(first), ReadBytes(second));

  // What `kiln verify` does: decode with the catalog of the header's target, check everything.
  auto backend = MakeBackendForArtifact(first.string());
  ASSERT_TRUE(backend.has_value()) << backend.error().ToString();
  EXPECT_EQ((*backend)->target_name(), "cuda");
  auto artifact = Artifact::Open(first.string(), **backend, /*verify_weights=*/true);
  ASSERT_TRUE(artifact.has_value()) << artifact.error().ToString();
  EXPECT_TRUE((*artifact)->VerifyChecksums().ok());
  const TargetDescriptor& target = (*artifact)->header().target;
  EXPECT_EQ(target.kind, "cuda");
  EXPECT_EQ(target.cuda_sm, 90);
  EXPECT_EQ((*artifact)->program().target, "cuda");
  EXPECT_EQ((*artifact)->program().alignment_bytes, (*backend)->alignment_bytes());

  // The same pipeline as JIT for cuda (planned, no GPU): the encoded programs are identical.
  LoadOptions options = SmallBounds();
  options.device = "cuda";
  options.plan_only = true;
  auto jit = LoadedModel::Load(FixtureDir("g31b"), options);
  ASSERT_TRUE(jit.has_value()) << jit.error().ToString();
  const ProgramSection section = ReadProgramSection(first, **backend);
  EXPECT_EQ(EncodeProgram((*jit)->program(), section.decoded.weight_offsets), section.bytes);
}

TEST_F(CudaTargetTest, KvCacheTypeAndDeviceMemoryAreTheBackendsPlan) {
  // A bf16 checkpoint: the CUDA backend keeps its KV cache in bf16.
  const fs::path path = Compile(FixtureDir("g31b/bf16"), "cuda:sm_90");
  LoadOptions options = SmallBounds();
  options.plan_only = true;  // inspect: no GPU needed
  auto model = LoadedModel::Load(path.string(), options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  EXPECT_EQ((*model)->device(), "cuda");
  ASSERT_NE((*model)->artifact(), nullptr);
  const Program& program = (*model)->program();
  ASSERT_FALSE(program.caches.empty());
  int64_t cache_bytes = 0;
  for (const CacheLayout& cache : program.caches) {
    EXPECT_EQ(cache.dtype, DType::kBF16) << cache.name;
    // K and V, 2 bytes each, per slot and KV head dimension, whole blocks of the one sequence.
    const int64_t blocks = (cache.capacity_positions + program.kv_block_size - 1) / program.kv_block_size;
    cache_bytes += 2 * blocks * program.kv_block_size * cache.num_kv_heads * cache.head_dim * 2;
  }
  const MemoryReport memory = (*model)->backend().PlanMemory(program, KvPoolSize::ForSequences(program, 1));
  EXPECT_EQ(memory.cache_bytes, cache_bytes);
  EXPECT_EQ(memory.arena_bytes, program.arena_bytes);
  EXPECT_GT(memory.weight_bytes, 0);  // weights are placed in device memory
}

TEST_F(CudaTargetTest, WithoutAGpuLoadingSaysSoAndNamesTheSource) {
  if (CudaDeviceHere()) GTEST_SKIP() << "this machine has a CUDA device";
  const fs::path source = dir_ / "source";
  fs::copy(FixtureDir("g31b"), source, fs::copy_options::recursive);
  const fs::path path = Compile(source.string(), "cuda:sm_90");
  std::string notice;
  LoadOptions options = SmallBounds();
  options.on_notice = [&](const std::string& text) { notice = text; };
  auto model = LoadedModel::Load(path.string(), options);
  ASSERT_FALSE(model.has_value());
  EXPECT_EQ(model.error().code(), ErrorCode::kDeviceUnavailable);
  const std::string& message = model.error().message();
  EXPECT_EQ(message.rfind(path.string() + " was compiled for cuda sm_90, but ", 0), 0u) << message;
  // No fallback: the source compiled for cuda could not run either, and the CPU is not asked for.
  EXPECT_TRUE(message.ends_with("; run it on a machine with that GPU, or recompile with --target cpu; its source " + Absolute(source) +
                                " is at hand: to run the model on the CPU, pass that checkpoint instead of the artifact"))
      << message;
  EXPECT_EQ(notice, "");
  // Without the source, the same error without the hint.
  fs::remove_all(source);
  auto orphan = LoadedModel::Load(path.string(), options);
  ASSERT_FALSE(orphan.has_value());
  EXPECT_TRUE(orphan.error().message().ends_with("; run it on a machine with that GPU, or recompile with --target cpu"))
      << orphan.error().message();

  // Loaded for planning, it decodes; a session is refused with the same reason.
  options.plan_only = true;
  auto planned = LoadedModel::Load(path.string(), options);
  ASSERT_TRUE(planned.has_value()) << planned.error().ToString();
  auto session = (*planned)->NewSession();
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), ErrorCode::kDeviceUnavailable);
  EXPECT_EQ(session.error().message().rfind(path.string() + " was compiled for cuda sm_90, but ", 0), 0u) << session.error().message();
}

TEST_F(CudaTargetTest, UnreadableCudaArtifactFallsBackForItsDevice) {
  // An artifact of another format version: its target cannot be trusted, so the fallback
  // compiles for the device the header records, if any.
  const fs::path path = Compile(FixtureDir("g31b"), "cuda:sm_90");
  std::vector<uint8_t> bytes = ReadBytes(path);
  const uint64_t newer = 9;
  std::memcpy(bytes.data() + 8, &newer, 8);
  WriteBytes(path, bytes);
  std::string notice;
  LoadOptions options = SmallBounds();
  options.on_notice = [&](const std::string& text) { notice = text; };
  auto model = LoadedModel::Load(path.string(), options);
  EXPECT_NE(notice.find("has artifact format version 9"), std::string::npos) << notice;
  EXPECT_TRUE(notice.ends_with("; compiling from the source checkpoint " + Absolute(FixtureDir("g31b")) + " instead (JIT, for cuda)")) << notice;
  if (CudaDeviceHere()) {
    ASSERT_TRUE(model.has_value()) << model.error().ToString();
    EXPECT_EQ((*model)->device(), "cuda");
  } else {
    ASSERT_FALSE(model.has_value());
    EXPECT_EQ(model.error().code(), ErrorCode::kDeviceUnavailable);
  }
}

TEST_F(CudaTargetTest, AnExplicitDeviceMustAgreeWithTheTarget) {
  const fs::path cuda = Compile(FixtureDir("g31b"), "cuda:sm_90", "cuda.kiln");
  LoadOptions options = SmallBounds();
  options.device = "cpu";
  auto model = LoadedModel::Load(cuda.string(), options);
  ASSERT_FALSE(model.has_value());
  EXPECT_EQ(model.error().ToString(), "invalid argument: " + cuda.string() + " was compiled for cuda sm_90 and runs on cuda, but --device cpu "
                                                                              "was asked for; drop --device, or recompile with --target cpu");
  const fs::path cpu = Compile(FixtureDir("g31b"), "cpu", "cpu.kiln");
  options.device = "cuda";
  auto other = LoadedModel::Load(cpu.string(), options);
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().message(), cpu.string() + " was compiled for cpu " + HostArch() + " (any ISA) and runs on cpu, but --device cuda "
                                                                                            "was asked for; drop --device, or recompile with --target cuda");
  // Compiling: the target picks the backend.
  ArtifactCompileOptions compile;
  compile.target = ParseTarget("cuda:sm_90").value();
  compile.load = SmallBounds();
  compile.load.device = "cpu";
  Status status = CompileArtifact(FixtureDir("g31b"), (dir_ / "x.kiln").string(), compile);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.ToString(), "invalid argument: --device cpu disagrees with --target cuda sm_90; the target picks the backend: drop --device");
  EXPECT_FALSE(fs::exists(dir_ / "x.kiln"));
}

TEST_F(CudaTargetTest, CpuBackendRefusesABf16Cache) {
  // A CPU artifact whose program asks for a bf16 cache, as a foreign or hostile file might: the
  // decoder accepts the dtype (CUDA programs use it), the CPU backend refuses the session.
  const fs::path path = Compile(FixtureDir("g31b"));
  CpuBackend cpu;
  const ProgramSection section = ReadProgramSection(path, cpu);
  Program program = section.decoded.program;
  for (CacheLayout& cache : program.caches) cache.dtype = DType::kBF16;
  const std::vector<uint8_t> bf16 = EncodeProgram(program, section.decoded.weight_offsets);
  int differing = 0;
  for (size_t i = 0; i < bf16.size() && i < section.bytes.size(); ++i) differing += bf16[i] != section.bytes[i];
  ASSERT_EQ(differing, 1);  // the cache dtype byte
  ReplaceProgramSection(path, section, bf16);

  auto model = LoadedModel::Load(path.string(), SmallBounds());
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  ASSERT_NE((*model)->artifact(), nullptr);
  EXPECT_EQ((*model)->program().caches.front().dtype, DType::kBF16);
  auto session = (*model)->NewSession(2);
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().ToString(), "unsupported: the program keeps its KV cache in bf16 (compiled for " + program.target +
                                            "); the CPU backend keeps it in f32: compile the model for the CPU (--target cpu)");

  // Any other cache dtype is refused by the decoder.
  std::vector<uint8_t> f16 = bf16;
  for (size_t i = 0; i < f16.size(); ++i) {
    if (bf16[i] != section.bytes[i]) f16[i] = static_cast<uint8_t>(DType::kF16);
  }
  auto decoded = DecodeProgram(f16, cpu);
  ASSERT_FALSE(decoded.has_value());
  EXPECT_EQ(decoded.error().ToString(), "malformed: program section: cache dtype f16 is not supported (expected f32 or bf16)");
}

TEST_F(CudaTargetTest, MalformedTargetDescriptorsAreRefused) {
  const fs::path path = Compile(FixtureDir("g31b"));
  const std::string damaged = "; the file is damaged: compile it again";
  RewriteHeader(path, [](nlohmann::ordered_json& h) { h["target"]["kind"] = "cuda"; h["target"]["cuda_sm"] = 0; });
  EXPECT_EQ(LoadError(path), "malformed: " + path.string() + ": the target descriptor is malformed (cuda_sm 0)" + damaged);
  RewriteHeader(path, [](nlohmann::ordered_json& h) { h["target"]["kind"] = "Cuda GPU"; });
  EXPECT_EQ(LoadError(path), "malformed: " + path.string() + ": the target descriptor is malformed (kind 'Cuda GPU')" + damaged);
  RewriteHeader(path, [](nlohmann::ordered_json& h) { h["target"]["kind"] = "cpu"; h["target"]["cpu_isa"] = "avx2;rm -rf"; });
  EXPECT_EQ(LoadError(path), "malformed: " + path.string() + ": the target descriptor is malformed (cpu_isa 'avx2;rm -rf')" + damaged);
  // A well-formed kind this kiln does not know: a newer kiln may; say so.
  RewriteHeader(path, [](nlohmann::ordered_json& h) { h["target"]["kind"] = "rocm"; h["target"]["cpu_isa"] = "any"; });
  EXPECT_EQ(LoadError(path), "unsupported: " + path.string() + " was compiled for rocm " + HostArch() +
                                 ", a target kind this kiln does not know; recompile with --target cpu");
}

TEST_F(CudaTargetTest, HeaderAndProgramMustAgreeOnTheTarget) {
  // A CUDA program under a CPU header: decoded for the CPU, it is refused, not run.
  const fs::path cuda = Compile(FixtureDir("g31b"), "cuda:sm_90", "cuda.kiln");
  RewriteHeader(cuda, [](nlohmann::ordered_json& h) { h["target"]["kind"] = "cpu"; h["target"]["cuda_sm"] = 0; });
  EXPECT_EQ(LoadError(cuda), "malformed: " + cuda.string() + ": program section: compiled for target 'cuda', read for the cpu backend");
  // A CPU program under a CUDA header, planned (no GPU needed): refused the same way.
  const fs::path cpu = Compile(FixtureDir("g31b"), "cpu", "cpu.kiln");
  RewriteHeader(cpu, [](nlohmann::ordered_json& h) { h["target"]["kind"] = "cuda"; h["target"]["cuda_sm"] = 90; });
  LoadOptions options = SmallBounds();
  options.plan_only = true;
  const std::string error = LoadError(cpu, options);
  EXPECT_EQ(error.rfind("malformed: " + cpu.string() + ": program section: compiled for target 'cpu (", 0), 0u) << error;
  EXPECT_TRUE(error.ends_with("', read for the cuda backend")) << error;
}

// Logits of a prompt and a few decode steps.
std::vector<float> Logits(LoadedModel& model) {
  auto session = model.NewSession(2);
  EXPECT_TRUE(session.has_value()) << session.error().ToString();
  if (!session) return {};
  auto logits = session->Prefill(std::vector<int32_t>{2, 17, 300, 41, 5}, /*all_positions=*/true);
  EXPECT_TRUE(logits.has_value());
  std::vector<float> all = *logits;
  for (int32_t token : {7, 300, 41}) {
    auto step = session->Step({&token, 1});
    EXPECT_TRUE(step.has_value());
    all.insert(all.end(), step->begin(), step->end());
  }
  return all;
}

TEST_F(CudaTargetTest, OnTheGpuAotAndJitAreBitIdentical) {
  if (!CudaDeviceHere()) GTEST_SKIP() << "no CUDA device here";
  for (const char* variant : {"g31b", "g31b/bf16", "e2b"}) {
    const fs::path path = Compile(FixtureDir(variant), "cuda");  // this machine's sm
    LoadOptions options = SmallBounds();
    options.allow_fallback = false;
    auto aot = LoadedModel::Load(path.string(), options);
    ASSERT_TRUE(aot.has_value()) << aot.error().ToString();
    EXPECT_EQ((*aot)->device(), "cuda");
    options.device = "cuda";
    auto jit = LoadedModel::Load(FixtureDir(variant), options);
    ASSERT_TRUE(jit.has_value()) << jit.error().ToString();
    const std::vector<float> a = Logits(**jit), b = Logits(**aot);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << variant << ": JIT and AOT logits differ on the GPU";
  }
}

}  // namespace
}  // namespace kiln
