#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "io/npy.h"
#include "kiln_process.h"

namespace kiln {
namespace {

using testing::CommandResult;
using testing::Kiln;

const std::string kFixtures = KILN_FIXTURES_DIR;
const std::string kData = KILN_TEST_DATA_DIR;

TEST(CliTest, VersionAndShortHelp) {
  CommandResult version = Kiln("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.output.rfind("kiln 0.1.0 (artifact format 4, ", 0), 0u) << version.output;
  CommandResult help = Kiln("-h");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("usage: kiln <command> [options]"), std::string::npos) << help.output;
}

TEST(CliTest, InspectBareConfigPrintsThePlan) {
  CommandResult run = Kiln("inspect " + kData + "/gemma-4-12b-config.json --plan --num-layers 6");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("(config only: no weights)"), std::string::npos);
  EXPECT_NE(run.output.find("6 layers (5 sliding, 1 full, 0 KV-shared)"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("step decode"), std::string::npos);
  EXPECT_NE(run.output.find("step prefill"), std::string::npos);
  EXPECT_NE(run.output.find("peak live bytes per layer"), std::string::npos);
  EXPECT_NE(run.output.find("ratio 1.0"), std::string::npos) << run.output;
}

TEST(CliTest, LogitsWritesNpy) {
  const std::string out = (std::filesystem::temp_directory_path() / "kiln_cli_logits.npy").string();
  std::filesystem::remove(out);
  CommandResult run = Kiln("logits " + kFixtures + "/g31b --tokens 2,17,300,41,5 --chunk 2 --out " + out);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  auto array = ReadNpyF32(out);
  ASSERT_TRUE(array.has_value());
  EXPECT_EQ(array->shape, (std::vector<int64_t>{5, 512}));
  std::filesystem::remove(out);
}

TEST(CliTest, BadInputsExitNonZeroWithAMessage) {
  CommandResult unknown = Kiln("logits " + kFixtures + "/g31b --tokens 2 --out /tmp/x.npy --bogus");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.output, "kiln logits: invalid argument: unknown option --bogus\n");

  CommandResult missing = Kiln("inspect /nonexistent/model");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.output, "kiln inspect: not found: model path /nonexistent/model does not exist (expected a checkpoint "
                            "directory, a .kiln artifact, a GGUF file or a config.json)\n");

  CommandResult too_long = Kiln("logits " + kFixtures + "/g31b --tokens 2,3,4,5 --ctx 3 --out /tmp/x.npy");
  EXPECT_EQ(too_long.exit_code, 2);
  EXPECT_EQ(too_long.output, "kiln logits: invalid argument: 4 tokens do not fit in --ctx 3\n");

  CommandResult bad_id = Kiln("logits " + kFixtures + "/g31b --tokens 2,99999 --out /tmp/x.npy");
  EXPECT_EQ(bad_id.exit_code, 2);
  EXPECT_EQ(bad_id.output, "kiln logits: invalid argument: token id 99999 is outside the vocabulary [0, 512)\n");

  CommandResult bad_number = Kiln("inspect " + kData + "/gemma-4-12b-config.json --num-layers 0");
  EXPECT_EQ(bad_number.exit_code, 2);
  EXPECT_EQ(bad_number.output, "kiln inspect: invalid argument: --num-layers expects an integer in [1, 100000], got '0'\n");

  CommandResult too_many_layers = Kiln("inspect " + kData + "/gemma-4-12b-config.json --num-layers 49");
  EXPECT_EQ(too_many_layers.exit_code, 2);
  EXPECT_EQ(too_many_layers.output, "kiln inspect: invalid argument: --num-layers 49 is outside [1, 48]\n");

  CommandResult no_command = Kiln("frobnicate");
  EXPECT_EQ(no_command.exit_code, 2);
  EXPECT_NE(no_command.output.find("kiln: unknown command 'frobnicate'"), std::string::npos);
}

// The bytes a `kiln inspect` memory line reports: "          arena     1.00 GiB (1073741824 bytes)".
int64_t ReportedBytes(const std::string& output, const std::string& label) {
  std::smatch match;
  const std::regex line("\n          " + label + " +[^\n]*\\((\\d+) bytes\\)");
  return std::regex_search(output, match, line) ? std::stoll(match[1]) : -1;
}

// Whether this kiln was built with the CUDA backend: planning for cuda needs no GPU, only that.
bool BuiltWithCuda() { return Kiln("inspect " + kData + "/gemma-4-12b-config.json --num-layers 1 --device cuda").exit_code == 0; }

// Whether a CUDA session runs here.
bool CudaDeviceHere() {
  const std::string out = (std::filesystem::temp_directory_path() / "kiln_cli_probe.npy").string();
  return Kiln("logits " + kFixtures + "/g31b --device cuda --tokens 2 --out " + out).exit_code == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Gemma 4 12B, first 6 layers (5 sliding, 1 full), at the defaults: context 4096, Tmax 512, one
// sequence, KV blocks of 16 slots. A sliding layer's ring holds window + Tmax - 1 = 1024 + 512 - 1
// = 1535 positions, in 96 blocks (1536 slots).
TEST(CliTest, InspectReportsCpuMemoryByLayerGroup) {
  CommandResult run = Kiln("inspect " + kData + "/gemma-4-12b-config.json --num-layers 6");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("memory    the model on cpu for 1 sequence (Tmax 512, context 4096, KV blocks of 16), planned: "),
            std::string::npos) << run.output;
  // The CPU keeps K and V in f32: 2 x 1536 x 8 heads x 256 x 4 bytes = 25,165,824 per layer, x5.
  EXPECT_NE(run.output.find("            sliding window 1024 (8 KV heads x 256, ring of 1535 positions, f32): 5 layers, "
                            "120.00 MiB (125829120 bytes)\n"), std::string::npos) << run.output;
  // 2 x 4096 x 1 head x 512 x 4 bytes.
  EXPECT_NE(run.output.find("            full attention (1 KV head x 512, 4096 positions, f32): 1 layer, 16.00 MiB (16777216 bytes)\n"),
            std::string::npos) << run.output;
  EXPECT_EQ(ReportedBytes(run.output, "kv cache"), 125829120 + 16777216);
  // Four sequences per step: a pool of four sequences' blocks.
  CommandResult four = Kiln("inspect " + kData + "/gemma-4-12b-config.json --num-layers 6 --parallel 4");
  ASSERT_EQ(four.exit_code, 0) << four.output;
  EXPECT_NE(four.output.find("memory    the model on cpu for 4 sequences"), std::string::npos) << four.output;
  EXPECT_EQ(ReportedBytes(four.output, "kv cache"), 4 * (125829120 + 16777216));
  EXPECT_NE(run.output.find("          weights   0 B (0 bytes), read in place from the mapped file\n"), std::string::npos) << run.output;
  EXPECT_EQ(ReportedBytes(run.output, "total"), ReportedBytes(run.output, "kv cache") + ReportedBytes(run.output, "arena") +
                                                    ReportedBytes(run.output, "other"));
  // The summary lines before it are unchanged.
  EXPECT_NE(run.output.find("kv cache  135.92 MiB: 5 sliding layers 119.92 MiB (ring), 1 full layers 16.00 MiB (context)"), std::string::npos);
}

TEST(CliTest, InspectReportsCudaMemoryWithoutAGpu) {
  if (!BuiltWithCuda()) GTEST_SKIP() << "built without the CUDA backend";
  CommandResult run = Kiln("inspect " + kData + "/gemma-4-12b-config.json --num-layers 6 --device cuda");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("memory    the model on cuda for 1 sequence (Tmax 512, context 4096, KV blocks of 16), planned: "),
            std::string::npos) << run.output;
  // A bf16 model: the CUDA backend keeps K and V in bf16, 2 x 1536 slots x 8 x 256 x 2 bytes per layer, x5.
  EXPECT_NE(run.output.find("            sliding window 1024 (8 KV heads x 256, ring of 1535 positions, bf16): 5 layers, "
                            "60.00 MiB (62914560 bytes)\n"), std::string::npos) << run.output;
  // 2 x 4096 x 1 x 512 x 2 bytes.
  EXPECT_NE(run.output.find("            full attention (1 KV head x 512, 4096 positions, bf16): 1 layer, 8.00 MiB (8388608 bytes)\n"),
            std::string::npos) << run.output;
  EXPECT_EQ(ReportedBytes(run.output, "kv cache"), 62914560 + 8388608);
  EXPECT_GT(ReportedBytes(run.output, "weights"), 0);  // placed in device memory
  EXPECT_EQ(ReportedBytes(run.output, "total"), ReportedBytes(run.output, "weights") + ReportedBytes(run.output, "kv cache") +
                                                    ReportedBytes(run.output, "arena") + ReportedBytes(run.output, "other"));
}

TEST(CliTest, CompileForCudaWithoutAGpu) {
  if (!BuiltWithCuda()) GTEST_SKIP() << "built without the CUDA backend";
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "kiln_cli_cuda";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "g31b.kiln").string(), again = (dir / "again.kiln").string();
  CommandResult compiled = Kiln("compile " + kFixtures + "/g31b --target cuda:sm_90 -o " + path);
  ASSERT_EQ(compiled.exit_code, 0) << compiled.output;
  EXPECT_EQ(compiled.output.rfind("kiln compile: wrote " + path + " for cuda sm_90 in ", 0), 0u) << compiled.output;
  ASSERT_EQ(Kiln("compile " + kFixtures + "/g31b --target cuda:sm_90 -o " + again).exit_code, 0);
  EXPECT_EQ(ReadFile(path), ReadFile(again));  // deterministic

  CommandResult verified = Kiln("verify " + path);
  EXPECT_EQ(verified.exit_code, 0) << verified.output;
  EXPECT_NE(verified.output.find(path + ": 4 sections, checksums ok; 3 step functions, every plan verified"), std::string::npos)
      << verified.output;

  // The fixture: sliding window 6, 2 KV heads x 16; full layers 2 KV heads x 32; f32 weights, so
  // an f32 cache. Ring: 6 + 512 - 1 = 517 positions in 33 blocks of 16 (528 slots),
  // 2 x 528 x 2 x 16 x 4 bytes = 135,168, x8.
  CommandResult inspected = Kiln("inspect " + path);
  EXPECT_EQ(inspected.exit_code, 0) << inspected.output;
  EXPECT_NE(inspected.output.find("target    cuda sm_90\n"), std::string::npos) << inspected.output;
  EXPECT_NE(inspected.output.find("memory    the model on cuda for 1 sequence (Tmax 512, context 4096"), std::string::npos) << inspected.output;
  EXPECT_NE(inspected.output.find("            sliding window 6 (2 KV heads x 16, ring of 517 positions, f32): 8 layers, "
                                  "1.03 MiB (1081344 bytes)\n"), std::string::npos) << inspected.output;
  // 2 x 4096 x 2 x 32 x 4 bytes = 2,097,152, x2.
  EXPECT_NE(inspected.output.find("            full attention (2 KV heads x 32, 4096 positions, f32): 2 layers, 4.00 MiB (4194304 bytes)\n"),
            std::string::npos) << inspected.output;

  CommandResult other_device = Kiln("inspect " + path + " --device cpu");
  EXPECT_EQ(other_device.exit_code, 2);
  EXPECT_EQ(other_device.output, "kiln inspect: invalid argument: " + path + " was compiled for cuda sm_90 and runs on cuda, but --device cpu "
                                 "was asked for; drop --device, or recompile with --target cpu\n");
  if (!CudaDeviceHere()) {
    // No fallback to the CPU: the error says why and names the source to run there instead.
    CommandResult logits = Kiln("logits " + path + " --tokens 2,17 --out " + (dir / "x.npy").string());
    EXPECT_EQ(logits.exit_code, 1);
    EXPECT_EQ(logits.output.rfind("kiln logits: device unavailable: " + path + " was compiled for cuda sm_90, but ", 0), 0u) << logits.output;
    EXPECT_NE(logits.output.find("; run it on a machine with that GPU, or recompile with --target cpu; its source " +
                                 std::filesystem::absolute(kFixtures + "/g31b").lexically_normal().string() +
                                 " is at hand: to run the model on the CPU, pass that checkpoint instead of the artifact\n"),
              std::string::npos) << logits.output;
    CommandResult local = Kiln("compile " + kFixtures + "/g31b --target cuda -o " + again);
    EXPECT_EQ(local.exit_code, 1);
    EXPECT_NE(local.output.find("kiln compile: device unavailable: --target cuda compiles for this machine's GPU, but "), std::string::npos);
    EXPECT_NE(local.output.find("; name the target, e.g. --target cuda:sm_90\n"), std::string::npos) << local.output;
  }
  CommandResult malformed = Kiln("compile " + kFixtures + "/g31b --target cuda:sm90 -o " + again);
  EXPECT_EQ(malformed.exit_code, 2);
  EXPECT_EQ(malformed.output, "kiln compile: invalid argument: malformed CUDA target 'cuda:sm90' (expected cuda:sm_XX, e.g. cuda:sm_90 "
                              "for H100/H200)\n");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kiln
