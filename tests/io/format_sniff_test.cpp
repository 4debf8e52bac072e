// io/format_sniff.h: every kind of file told by its first bytes, whatever its name.
#include "io/format_sniff.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "artifact/artifact_file.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

class FormatSniffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_format_sniff_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Writes `bytes` to a file named `name` (names deliberately misleading) and sniffs it.
  FileFormat Sniff(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return SniffPath(path).format;
  }
  fs::path dir_;
};

TEST_F(FormatSniffTest, TheMagicMatchesTheArtifactWriters) { EXPECT_EQ(std::memcmp(kKilnMagic, kArtifactMagic, 8), 0); }

TEST_F(FormatSniffTest, EveryKindOfFileByItsBytes) {
  EXPECT_EQ(Sniff("model.json", std::string(kKilnMagic, 8) + "rest"), FileFormat::kKiln);
  EXPECT_EQ(Sniff("config.json", "GGUF\x03\0\0\0"), FileFormat::kGguf);
  // safetensors: header length 2 (little-endian u64), then "{}".
  EXPECT_EQ(Sniff("weights.kiln", std::string("\x02\0\0\0\0\0\0\0{}", 10)), FileFormat::kSafetensors);
  // A header length past the end of the file is not safetensors.
  EXPECT_EQ(Sniff("short", std::string("\xff\0\0\0\0\0\0\0{}", 10)), FileFormat::kUnknown);
  EXPECT_EQ(Sniff("model.gguf", " \n\t{\"a\": 1}"), FileFormat::kJson);
  EXPECT_EQ(Sniff("list", "[1]"), FileFormat::kJson);
  EXPECT_EQ(Sniff("empty.kiln", ""), FileFormat::kEmpty);
  EXPECT_EQ(Sniff("text.kiln", "hello"), FileFormat::kUnknown);
  EXPECT_EQ(SniffPath(dir_.string()).format, FileFormat::kDirectory);
  EXPECT_EQ(SniffPath((dir_ / "missing").string()).format, FileFormat::kMissing);
  EXPECT_EQ(SniffPath("/dev/null").format, FileFormat::kSpecial);
}

TEST_F(FormatSniffTest, AFifoIsNeverOpened) {
  const std::string fifo = (dir_ / "config.json").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening it for reading would wait for a writer forever; the sniff must return at once.
  EXPECT_EQ(SniffPath(fifo).format, FileFormat::kSpecial);
  EXPECT_EQ(ModelInputError(fifo, SniffPath(fifo)).ToString(),
            "invalid argument: model path " + fifo +
                " is not a regular file (a FIFO, device or socket); kiln reads models only from regular files and directories");
}

TEST_F(FormatSniffTest, MessagesSayWhatTheFileIsAndWhatToDo) {
  const std::string weights = (dir_ / "model.safetensors").string();
  std::ofstream(weights, std::ios::binary) << std::string("\x02\0\0\0\0\0\0\0{}", 10);
  EXPECT_EQ(ModelInputError(weights, SniffPath(weights)).ToString(),
            "unsupported: " + weights + " is a safetensors weights file; kiln loads the checkpoint directory that holds it with "
                                        "its config.json and tokenizer: pass " + dir_.string());
  const std::string damaged = (dir_ / "model.kiln").string();
  std::ofstream(damaged, std::ios::binary) << "KILNA\x01\x02junk";
  EXPECT_EQ(ModelInputError(damaged, SniffPath(damaged)).ToString(),
            "malformed: " + damaged + " is named like a .kiln artifact but does not start with kiln's magic bytes \"KILNAOT\" "
                                      "(found \"KILNA..j\"): the file is damaged or not an artifact; recompile it with `kiln compile`");
  const std::string other = (dir_ / "notes.txt").string();
  std::ofstream(other) << "hello world";
  EXPECT_EQ(ModelInputError(other, SniffPath(other)).ToString(),
            "malformed: model path " + other + " is a file of unknown format, starting \"hello wo\" (expected a checkpoint "
                                               "directory, a .kiln artifact, a GGUF file or a config.json)");
  EXPECT_FALSE(IsModelInput(FileFormat::kSafetensors));
  EXPECT_TRUE(IsModelInput(FileFormat::kGguf));
}

}  // namespace
}  // namespace kiln
