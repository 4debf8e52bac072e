// Model paths recognised by their bytes (io/format_sniff.h) as a user meets them: a lone
// .safetensors, a damaged .kiln, a FIFO as a model or as config.json, tokenize on a .kiln; a
// .kiln refuses --num-layers/--chunk it was not compiled with, and never falls back silently to
// a checkpoint that changed since it was compiled.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "kiln_process.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::Kiln;

const std::string kFixtures = KILN_FIXTURES_DIR;
const std::string kBrownModel = KILN_BROWN_MODEL_DIR;
const std::string kTokens = " --prompt-tokens 2,3 --output-tokens --max-tokens 2 --ignore-eos";

class ModelFormatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_model_formats_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(ModelFormatsTest, ALoneSafetensorsFileNamesTheDirectoryToPass) {
  for (const char* command : {"run", "tokenize"}) {
    CommandResult run = Kiln(std::string(command) + " " + kBrownModel + "/model.safetensors " +
                             (std::string(command) == "run" ? "--prompt hi" : "hi"));
    EXPECT_EQ(run.exit_code, 1) << command;
    EXPECT_EQ(run.output, "kiln " + std::string(command) + ": unsupported: " + kBrownModel +
                              "/model.safetensors is a safetensors weights file; kiln loads the checkpoint directory that holds "
                              "it with its config.json and tokenizer: pass " + kBrownModel + "\n");
  }
}

TEST_F(ModelFormatsTest, ADamagedKilnSaysSo) {
  std::ofstream(path("model.kiln"), std::ios::binary) << "KILNA\x01\x02junk";
  CommandResult run = Kiln("run " + path("model.kiln") + kTokens);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.output, "kiln run: malformed: " + path("model.kiln") +
                            " is named like a .kiln artifact but does not start with kiln's magic bytes \"KILNAOT\" (found "
                            "\"KILNA..j\"): the file is damaged or not an artifact; recompile it with `kiln compile`\n");
}

TEST_F(ModelFormatsTest, AFifoNeverBlocks) {
  ASSERT_EQ(::mkfifo(path("model").c_str(), 0600), 0);
  // A read of it would wait for a writer forever: it is refused without being opened.
  CommandResult model = Kiln("inspect " + path("model"));
  EXPECT_EQ(model.exit_code, 2);
  EXPECT_EQ(model.output, "kiln inspect: invalid argument: model path " + path("model") +
                              " is not a regular file (a FIFO, device or socket); kiln reads models only from regular files "
                              "and directories\n");
  fs::copy(kFixtures + "/g31b", path("ckpt"), fs::copy_options::recursive);
  fs::remove(path("ckpt/config.json"));
  ASSERT_EQ(::mkfifo(path("ckpt/config.json").c_str(), 0600), 0);
  CommandResult config = Kiln("run " + path("ckpt") + kTokens);
  EXPECT_EQ(config.exit_code, 1);
  EXPECT_EQ(config.output, "kiln run: i/o error: " + path("ckpt/config.json") + " is not a regular file\n");
}

TEST_F(ModelFormatsTest, TokenizeReadsTheTokenizerAKilnCarries) {
  ASSERT_EQ(Kiln("compile " + kBrownModel + " -o " + path("brown.kiln")).exit_code, 0);
  CommandResult from_kiln = Kiln("tokenize " + path("brown.kiln") + " 'hello world' --ids-only");
  CommandResult from_checkpoint = Kiln("tokenize " + kBrownModel + " 'hello world' --ids-only");
  EXPECT_EQ(from_kiln.exit_code, 0) << from_kiln.output;
  EXPECT_EQ(from_kiln.output, from_checkpoint.output);
}

TEST_F(ModelFormatsTest, AKilnRefusesPlanFlagsItWasNotCompiledWith) {
  ASSERT_EQ(Kiln("compile " + kFixtures + "/g31b --chunk 8 -o " + path("g.kiln")).exit_code, 0);
  CommandResult chunk = Kiln("run " + path("g.kiln") + kTokens + " --chunk 16");
  EXPECT_EQ(chunk.exit_code, 2);
  EXPECT_EQ(chunk.output, "kiln run: invalid argument: " + path("g.kiln") +
                              " was compiled with --chunk 8, but --chunk 16 was asked for; drop --chunk, or recompile with it\n");
  CommandResult layers = Kiln("run " + path("g.kiln") + kTokens + " --num-layers 1");
  EXPECT_EQ(layers.exit_code, 2);
  EXPECT_EQ(layers.output, "kiln run: invalid argument: " + path("g.kiln") +
                               " was compiled with 10 layers, but --num-layers 1 was asked for; drop --num-layers, or recompile "
                               "with it\n");
  CommandResult same = Kiln("run " + path("g.kiln") + kTokens + " --chunk 8 --num-layers 10", "", /*quiet=*/true);
  EXPECT_EQ(same.exit_code, 0) << same.output;
}

TEST_F(ModelFormatsTest, AChangedSourceIsNeverASilentFallback) {
  fs::copy(kFixtures + "/g31b", path("ckpt"), fs::copy_options::recursive);
  ASSERT_EQ(Kiln("compile " + path("ckpt") + " -o " + path("g.kiln")).exit_code, 0);
  // Damage the last weight byte: the weights section fails its checksum.
  {
    std::fstream file(path("g.kiln"), std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(-1, std::ios::end);
    const char last = static_cast<char>(file.get() ^ 0xff);
    file.seekp(-1, std::ios::end);
    file.put(last);
  }
  const std::string damaged = path("g.kiln") + ": section 'weights' fails its checksum; the file is damaged: compile it again";
  // The unchanged source: the fallback is taken, and said.
  CommandResult unchanged = Kiln("run " + path("g.kiln") + kTokens + " --verify-weights", "", /*quiet=*/false);
  EXPECT_EQ(unchanged.exit_code, 0) << unchanged.output;
  EXPECT_NE(unchanged.output.find("kiln: " + damaged + "; compiling from the source checkpoint " + path("ckpt") + " instead (JIT)\n"),
            std::string::npos) << unchanged.output;

  // The source changes (one byte of config.json's text): refused.
  std::ofstream(path("ckpt/config.json"), std::ios::app) << "\n";
  CommandResult changed = Kiln("run " + path("g.kiln") + kTokens + " --verify-weights");
  EXPECT_EQ(changed.exit_code, 1);
  EXPECT_EQ(changed.output.rfind("kiln run: version mismatch: " + damaged + "; the checkpoint at " + path("ckpt") + " is not the one " +
                                     path("g.kiln") + " was compiled from (source hash ", 0), 0u) << changed.output;
  EXPECT_NE(changed.output.find(": not falling back to a different model; recompile with `kiln compile " + path("ckpt") + " -o " +
                                path("g.kiln") + "`, or give the checkpoint with --source DIR to use it anyway\n"),
            std::string::npos) << changed.output;
  // Named with --source, it is used, with a notice.
  CommandResult forced = Kiln("run " + path("g.kiln") + kTokens + " --verify-weights --source " + path("ckpt"));
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_NE(forced.output.find("; using it because --source names it\n"), std::string::npos) << forced.output;
}

}  // namespace
}  // namespace kiln
