// .kiln artifacts: JIT and AOT give bit-identical logits on every variant, compiling is
// deterministic, and every mismatch is an error that says what was expected, what was found
// and what to do — or, with the source at hand, a JIT fallback that says so.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <random>

#include "artifact_fixture.h"
#include "artifact/program_codec.h"
#include "backends/cpu/simd/dot.h"
#include "io/json_file.h"

namespace kiln {
namespace {

using testing::ArtifactTest;
using testing::FixtureDir;
using testing::ReadBytes;
using testing::SmallBounds;
using testing::WriteBytes;
namespace fs = std::filesystem;

// Logits of the prompt (every position) and of a few decode steps.
std::vector<float> RunModel(LoadedModel& model, const std::vector<int32_t>& prompt) {
  auto session = model.NewSession(2);
  EXPECT_TRUE(session.has_value());
  auto logits = session->Prefill(prompt, /*all_positions=*/true);
  EXPECT_TRUE(logits.has_value());
  std::vector<float> all = *logits;
  for (int32_t token : {7, 300, 41}) {
    auto step = session->Step({&token, 1});
    EXPECT_TRUE(step.has_value());
    all.insert(all.end(), step->begin(), step->end());
  }
  return all;
}

TEST_F(ArtifactTest, JitAndAotAreBitIdenticalOnEveryVariant) {
  for (const char* variant : {"e2b", "e4b", "g12b", "a26b", "g31b", "g31b/bf16"}) {
    const fs::path artifact = Compile(FixtureDir(variant));
    auto document = ReadJsonFile(FixtureDir(std::string(variant).substr(0, std::string(variant).find('/'))) + "/reference.json");
    const std::vector<int32_t> prompt = (*document)["prompt"].get<std::vector<int32_t>>();
    auto jit = LoadedModel::Load(FixtureDir(variant), SmallBounds());
    auto aot = LoadedModel::Load(artifact.string(), SmallBounds());
    ASSERT_TRUE(jit.has_value() && aot.has_value()) << variant;
    ASSERT_NE((*aot)->artifact(), nullptr);
    const std::vector<float> a = RunModel(**jit, prompt), b = RunModel(**aot, prompt);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << variant << ": JIT and AOT logits differ";
  }
}

// An MTP assistant compiled in (kiln compile --draft): the artifact's draft step drafts what the
// JIT program's does, bit for bit, and an assistant asked for at load of an artifact is refused.
// e2b's mtp_copy_centroid has the centroid-masked head, whose token ordering is an i32 weight.
TEST_F(ArtifactTest, MtpAssistantCompiledInDraftsAsJit) {
  auto check = [&](const std::string& target, const std::string& assistant) {
    LoadOptions bounds = SmallBounds();
    bounds.assistant = FixtureDir(target) + "/" + assistant;
    ArtifactCompileOptions options;
    options.target = ParseTarget("cpu").value();
    options.load = bounds;
    const fs::path artifact = dir_ / (target + "-mtp.kiln");
    ASSERT_TRUE(CompileArtifact(FixtureDir(target), artifact.string(), options).ok());
    auto jit = LoadedModel::Load(FixtureDir(target), bounds);
    auto aot = LoadedModel::Load(artifact.string(), SmallBounds());
    ASSERT_TRUE(jit.has_value() && aot.has_value()) << (aot.has_value() ? "" : aot.error().ToString());
    ASSERT_NE((*aot)->program().draft_step(), nullptr);
    std::vector<std::vector<float>> outputs;
    for (LoadedModel* model : {jit->get(), aot->get()}) {
      auto session = model->NewSession(2);
      ASSERT_TRUE(session.has_value());
      const std::vector<int32_t> prompt = {2, 37, 377, 64, 34, 340, 408};
      std::vector<float> logits(static_cast<size_t>(session->vocab_size())), hidden(static_cast<size_t>(session->runner().hidden_size()));
      ASSERT_TRUE(session->StepInto(prompt, false, logits, hidden).ok());
      std::vector<float> all = hidden;
      int32_t token = 291;
      for (int k = 0; k < 3; ++k) {
        const Runner::DraftEntry entry{&session->sequence(), token};
        ASSERT_TRUE(session->runner().Draft(std::span<const Runner::DraftEntry>(&entry, 1), hidden, std::span<int32_t>(&token, 1), logits).ok());
        all.insert(all.end(), logits.begin(), logits.end());
        all.insert(all.end(), hidden.begin(), hidden.end());
      }
      outputs.push_back(std::move(all));
    }
    ASSERT_EQ(outputs[0].size(), outputs[1].size());
    EXPECT_EQ(std::memcmp(outputs[0].data(), outputs[1].data(), outputs[0].size() * sizeof(float)), 0) << "JIT and AOT drafts differ";
    EXPECT_NE(LoadError(artifact, bounds).find("compile it in with kiln compile --draft"), std::string::npos);
  };
  for (const auto& [target, assistant] : {std::pair<std::string, std::string>{"g31b", "mtp_copy"}, {"e2b", "mtp_copy_centroid"}}) {
    SCOPED_TRACE(target + "/" + assistant);
    check(target, assistant);
  }
}

TEST_F(ArtifactTest, CompilingIsDeterministic) {
  const fs::path first = Compile(FixtureDir("e2b"), "cpu", "a.kiln");
  const fs::path second = Compile(FixtureDir("e2b"), "cpu", "b.kiln");
  EXPECT_EQ(ReadBytes(first), ReadBytes(second));
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << "left behind: " << entry.path();
  }
}

TEST_F(ArtifactTest, VerifyChecksEverything) {
  const fs::path path = Compile(FixtureDir("g31b"));
  CpuBackend backend;
  auto artifact = Artifact::Open(path.string(), backend, /*verify_weights=*/true);
  ASSERT_TRUE(artifact.has_value()) << artifact.error().ToString();
  EXPECT_TRUE((*artifact)->VerifyChecksums().ok());
  EXPECT_TRUE((*artifact)->File("config.json").has_value());
  EXPECT_EQ((*artifact)->header().source_path, fs::absolute(FixtureDir("g31b")).lexically_normal().string());
  // Damage one weight byte: the default load does not read the weights, verify does.
  std::vector<uint8_t> bytes = ReadBytes(path);
  bytes[bytes.size() - 3] ^= 0x40;
  WriteBytes(path, bytes);
  auto quick = Artifact::Open(path.string(), backend, /*verify_weights=*/false);
  ASSERT_TRUE(quick.has_value());
  Status full = (*quick)->VerifyChecksums();
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().message(), path.string() + ": section 'weights' fails its checksum; the file is damaged: compile it again");
}

TEST_F(ArtifactTest, WrongMagic) {
  const fs::path path = dir_ / "not.kiln";
  WriteBytes(path, std::vector<uint8_t>(64, 'x'));
  CpuBackend backend;
  auto artifact = Artifact::Open(path.string(), backend, false);
  ASSERT_FALSE(artifact.has_value());
  EXPECT_EQ(artifact.error().message(), path.string() + " is not a kiln artifact (expected the magic bytes \"KILNAOT\", found \"xxxxxxxx\"); "
                                                        "pass a checkpoint directory, or compile one with `kiln compile`");
}

TEST_F(ArtifactTest, NewerAndOlderFormatVersions) {
  const fs::path path = Compile(FixtureDir("g31b"));
  std::vector<uint8_t> bytes = ReadBytes(path);
  // Version 1 files predate batched steps (no sequence bound, no KV blocks), version 2 files
  // quantized weights (no recipe, no source dtypes): refused, not guessed.
  for (uint64_t version : {kArtifactFormatVersion + 1, uint64_t{2}, uint64_t{1}, uint64_t{0}}) {
    std::memcpy(bytes.data() + 8, &version, 8);
    WriteBytes(path, bytes);
    const std::string error = LoadError(path);
    EXPECT_NE(error.find("version mismatch: " + path.string() + " has artifact format version " + std::to_string(version) +
                         ", this kiln reads version " + std::to_string(kArtifactFormatVersion)), std::string::npos) << error;
    EXPECT_NE(error.find(version > kArtifactFormatVersion ? "upgrade kiln" : "recompile the model with this kiln"), std::string::npos) << error;
  }
}

TEST_F(ArtifactTest, TargetThisMachineCannotRun) {
  const fs::path path = Compile(FixtureDir("g31b"));
  RewriteHeader(path, [](nlohmann::ordered_json& h) { h["target"]["arch"] = "aarch64"; });
  EXPECT_EQ(LoadError(path), "unsupported: " + path.string() + " was compiled for cpu aarch64 (any ISA), this machine is " + HostArch() +
                                 "; recompile it here with --target cpu");
  // A header that names a CUDA target over a CPU program: cuda_target_test.cpp.
}

TEST_F(ArtifactTest, CpuIsaRequirement) {
  bool has_avx2 = false;
  for (const cpu::DotKernels* table : cpu::SupportedDotKernels()) has_avx2 |= std::string(table->isa) == "avx2";
  const fs::path path = Compile(FixtureDir("g31b"), has_avx2 ? "cpu:avx2" : "cpu:generic");
  auto model = LoadedModel::Load(path.string(), SmallBounds());
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  RewriteHeader(path, [](nlohmann::ordered_json& h) { h["target"]["cpu_isa"] = "avx1024"; });
  const std::string error = LoadError(path);
  EXPECT_NE(error.find("was compiled for cpu x86_64 (avx1024), this CPU supports only generic"), std::string::npos) << error;
  EXPECT_NE(error.find("; recompile with --target cpu (runs on any x86-64 CPU)"), std::string::npos) << error;
  auto unknown = ParseTarget("gpu");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().message(), "unknown target 'gpu' (expected cpu, cpu:ISA or cuda[:sm_XX])");
}

TEST_F(ArtifactTest, PlanThatDoesNotFit) {
  const fs::path path = Compile(FixtureDir("g31b"));
  LoadOptions options = SmallBounds();
  options.required_context = 128;
  EXPECT_EQ(LoadError(path, options), "invalid plan: " + path.string() + " was compiled for a context of 64 tokens, 128 were asked for; "
                                                                         "recompile with --ctx 128");
}

TEST_F(ArtifactTest, ChecksumAndTruncation) {
  const fs::path path = Compile(FixtureDir("g31b"));
  std::vector<uint8_t> bytes = ReadBytes(path);
  std::vector<uint8_t> damaged = bytes;
  damaged[4096 + 100] ^= 1;  // inside the program section
  WriteBytes(path, damaged);
  EXPECT_EQ(LoadError(path), "malformed: " + path.string() + ": section 'program' fails its checksum; the file is damaged: compile it again");
  WriteBytes(path, std::vector<uint8_t>(bytes.begin(), bytes.end() - 1000));
  const std::string truncated = LoadError(path);
  EXPECT_NE(truncated.find("section 'weights'"), std::string::npos) << truncated;
  EXPECT_NE(truncated.find("lies outside the file of"), std::string::npos) << truncated;
  EXPECT_NE(truncated.find("(truncated?)"), std::string::npos) << truncated;
  WriteBytes(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + 20));
  EXPECT_NE(LoadError(path).find("is not a kiln artifact"), std::string::npos);
}

TEST_F(ArtifactTest, FallsBackToJitWhenTheSourceIsAtHand) {
  // A copy of the source, so the test can also take it away.
  const fs::path source = dir_ / "source";
  fs::copy(FixtureDir("g31b"), source, fs::copy_options::recursive);
  const fs::path path = Compile(source.string());
  std::vector<uint8_t> bytes = ReadBytes(path);
  uint64_t newer = 9;
  std::memcpy(bytes.data() + 8, &newer, 8);
  WriteBytes(path, bytes);
  std::string notice;
  LoadOptions options = SmallBounds();
  options.on_notice = [&](const std::string& text) { notice = text; };
  auto model = LoadedModel::Load(path.string(), options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  EXPECT_EQ((*model)->artifact(), nullptr);  // compiled from the checkpoint
  EXPECT_NE(notice.find("has artifact format version 9"), std::string::npos) << notice;
  EXPECT_NE(notice.find("compiling from the source checkpoint " + fs::absolute(source).lexically_normal().string() + " instead (JIT)"),
            std::string::npos) << notice;
  // --no-fallback turns it into the error.
  EXPECT_NE(LoadError(path).find("has artifact format version 9"), std::string::npos);
  // Without the source, the error says how to give one.
  fs::remove_all(source);
  auto orphan = LoadedModel::Load(path.string(), SmallBounds());
  ASSERT_FALSE(orphan.has_value());
  EXPECT_NE(orphan.error().message().find("; its source " + fs::absolute(source).lexically_normal().string() +
                                        " is not at hand; to compile from the checkpoint instead, give it with --source DIR"),
            std::string::npos) << orphan.error().message();
  // --source points at another copy.
  options.source = FixtureDir("g31b");
  EXPECT_TRUE(LoadedModel::Load(path.string(), options).has_value());
}

// Hostile bytes: mutations of a valid artifact are rejected with an error or accepted as a
// Program that verifies; never a crash. Whole files go through the checksums; the program
// section is also mutated behind them, straight into the decoder. (The libFuzzer target,
// fuzz_artifact_reader, explores further.)
std::vector<uint8_t> Mutate(std::vector<uint8_t> bytes, std::mt19937_64& rng) {
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits && !bytes.empty(); ++e) {
    const size_t at = rng() % bytes.size();
    switch (rng() % 4) {
      case 0: bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
      case 1: bytes[at] = static_cast<uint8_t>(rng()); break;
      case 2: bytes[at] = 0xff; break;
      default: bytes.resize(at); break;
    }
  }
  return bytes;
}

TEST_F(ArtifactTest, MutatedFilesNeverCrash) {
  const std::vector<uint8_t> valid = ReadBytes(Compile(FixtureDir("a26b")));
  CpuBackend backend;
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 500; ++trial) {
    const std::vector<uint8_t> bytes = Mutate(valid, rng);
    auto artifact = Artifact::OpenImage(bytes, "fuzz", backend, /*verify_weights=*/true);
    if (artifact.has_value()) {
      EXPECT_TRUE((*artifact)->VerifyChecksums().ok());
    }
  }
  auto header = Artifact::ReadHeader(valid, "valid");
  ASSERT_TRUE(header.has_value());
  const ArtifactSection* section = header->Find("program");
  const std::vector<uint8_t> program(valid.begin() + static_cast<std::ptrdiff_t>(section->offset),
                                     valid.begin() + static_cast<std::ptrdiff_t>(section->offset + section->size));
  int accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const std::vector<uint8_t> bytes = Mutate(program, rng);
    auto decoded = DecodeProgram(bytes, backend);
    if (decoded.has_value()) {
      ++accepted;
      EXPECT_TRUE(VerifyProgram(decoded->program, decoded->program.arena_bytes).ok());
    }
  }
  EXPECT_LT(accepted, 3000);  // most mutations must be caught
}

TEST_F(ArtifactTest, InterruptedCompileLeavesNothing) {
  const fs::path out = dir_ / "interrupted.kiln";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ArtifactCompileOptions options;
    options.target = ParseTarget("cpu").value();
    options.load = SmallBounds();
    // Interrupt the compile while it writes weights, as Ctrl-C would.
    options.progress = [](uint64_t done, uint64_t total) { if (done * 2 >= total) raise(SIGINT); };
    Status status = CompileArtifact(FixtureDir("g31b"), out.string(), options);
    _exit(status.ok() ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT);
  EXPECT_FALSE(fs::exists(out));
  for (const auto& entry : fs::directory_iterator(dir_)) {
    ADD_FAILURE() << "left behind: " << entry.path();
  }
}

}  // namespace
}  // namespace kiln
