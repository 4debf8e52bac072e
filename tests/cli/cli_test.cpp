#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "io/npy.h"
#include "kiln_process.h"

namespace kiln {
namespace {

using testing::CommandResult;
using testing::Kiln;

const std::string kFixtures = KILN_FIXTURES_DIR;
const std::string kData = KILN_TEST_DATA_DIR;

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
                            "directory or a config.json)\n");

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

}  // namespace
}  // namespace kiln
