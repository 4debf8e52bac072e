// Metadata that would change behaviour without a word is an error or a warning naming it:
// generation_config.json of the wrong types, a chat_template that is not text, a KILN_CPU_ISA the
// CPU lacks or that does not exist. (--num-layers/--chunk on a .kiln: model_formats_test.cpp.)
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "kiln_process.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::Kiln;

const std::string kBrownModel = KILN_BROWN_MODEL_DIR;

class MetadataErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_metadata_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy(kBrownModel, checkpoint(), fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string checkpoint() const { return (dir_ / "ckpt").string(); }
  fs::path dir_;
};

TEST_F(MetadataErrorsTest, GenerationConfigOfTheWrongTypesIsNamed) {
  std::ofstream(checkpoint() + "/generation_config.json") << R"({"do_sample": true, "temperature": "0.7"})";
  CommandResult run = Kiln("run " + checkpoint() + " --prompt hi --max-tokens 2");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.output, "kiln run: malformed: ckpt: generation_config.json: \"temperature\" must be a number, found string\n");

  std::ofstream(checkpoint() + "/generation_config.json") << R"({"do_sample": "yes"})";
  run = Kiln("run " + checkpoint() + " --prompt hi --max-tokens 2");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.output, "kiln run: malformed: ckpt: generation_config.json: \"do_sample\" must be true or false, found string\n");

  // Well-typed but unusable: an error too, not greedy decoding.
  std::ofstream(checkpoint() + "/generation_config.json") << R"({"do_sample": true, "top_p": 7})";
  run = Kiln("run " + checkpoint() + " --prompt hi --max-tokens 2");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.output.rfind("kiln run: malformed: ckpt: generation_config.json: ", 0), 0u) << run.output;
}

TEST_F(MetadataErrorsTest, AChatTemplateThatIsNotTextIsAnError) {
  std::ofstream(checkpoint() + "/tokenizer_config.json") << R"({"chat_template": 42})";
  CommandResult run = Kiln("run " + checkpoint() + " --prompt hi --max-tokens 2");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.output, "kiln run: malformed: ckpt: tokenizer_config.json: \"chat_template\" must be a string or a list of "
                        "{\"name\", \"template\"}, found number\n");
  CommandResult tokenize = Kiln("tokenize " + checkpoint() + " hi --chat");
  EXPECT_EQ(tokenize.exit_code, 1);
  EXPECT_EQ(tokenize.output, "kiln tokenize: malformed: " + checkpoint() +
                                 "/tokenizer_config.json: \"chat_template\" must be a string or a list of {\"name\", "
                                 "\"template\"}, found number\n");
}

// stderr of `KILN_CPU_ISA=isa kiln run ...`.
std::string StderrWithIsa(const std::string& isa) {
  const std::string command = "KILN_CPU_ISA=" + isa + " " + KILN_BINARY + " run " + kBrownModel +
                              " --prompt hi --max-tokens 1 2>&1 >/dev/null </dev/null";
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  std::array<char, 4096> buffer;
  size_t count;
  while (pipe && (count = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), count);
  if (pipe) pclose(pipe);
  return output;
}

TEST(CpuIsaOverride, AnIsaThatDoesNotExistIsNamedWithTheValidOnes) {
  const std::string output = StderrWithIsa("avx9");
  EXPECT_EQ(output.rfind("kiln: KILN_CPU_ISA=avx9 is not an ISA kiln knows (generic, avx2, avx512, avx512bf16); this CPU runs generic", 0),
            0u) << output;
  // A supported one is taken without a word.
  EXPECT_EQ(StderrWithIsa("generic").find("KILN_CPU_ISA"), std::string::npos);
}

}  // namespace
}  // namespace kiln
