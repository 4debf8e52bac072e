// Outputs never destroy anything (tools/kiln/output_paths.h, io/output_file.h), run as a user
// would: an output that is an input is refused before any work, devices and FIFOs are written to
// and never replaced, write errors (a full disk, a closed pipe) exit non-zero with a message, and
// temporaries a killed compile left are removed by the next one.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>

#include "kiln_process.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::Kiln;

const std::string kFixtures = KILN_FIXTURES_DIR;
const std::string kBrownModel = KILN_BROWN_MODEL_DIR;
// Logits of 2 positions over g31b's vocabulary of 512: a 128-byte .npy header + 2 * 512 * 4.
constexpr size_t kLogitsBytes = 128 + 2 * 512 * 4;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// A fresh directory with a copy of the g31b checkpoint in it ("<dir>/ckpt").
class OutputPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_output_paths_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy(kFixtures + "/g31b", checkpoint(), fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string checkpoint() const { return path("ckpt"); }

  fs::path dir_;
};

TEST_F(OutputPathsTest, AnOutputInsideTheInputIsRefusedBeforeAnyWork) {
  const std::string weights = checkpoint() + "/model.safetensors";
  const std::string before = ReadAll(weights);
  CommandResult compile = Kiln("compile " + checkpoint() + " -o " + weights);
  EXPECT_EQ(compile.exit_code, 2);
  EXPECT_EQ(compile.output, "kiln compile: invalid argument: output " + weights + " is inside the input directory " +
                                checkpoint() + "; write it somewhere else\n");
  EXPECT_EQ(ReadAll(weights), before);

  // Through ".." and a trailing slash it is the same directory.
  CommandResult dotted = Kiln("logits " + checkpoint() + "/ --tokens 2,3 --out " + checkpoint() + "/../ckpt/x.npy");
  EXPECT_EQ(dotted.exit_code, 2);
  EXPECT_EQ(dotted.output, "kiln logits: invalid argument: output " + checkpoint() + "/../ckpt/x.npy is inside the input directory " +
                               checkpoint() + "/; write it somewhere else\n");
  EXPECT_FALSE(fs::exists(checkpoint() + "/x.npy"));
}

TEST_F(OutputPathsTest, AnOutputThatIsTheInputFileIsRefused) {
  const std::string prompt = path("prompt.txt");
  std::ofstream(prompt) << "hello";
  fs::create_symlink(prompt, path("link.txt"));
  CommandResult run = Kiln("run " + kBrownModel + " --prompt-file " + prompt + " --save-logits " + path("link.txt"));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.output, "kiln run: invalid argument: output " + path("link.txt") + " is the input " + prompt +
                            "; writing it would destroy the input\n");
  EXPECT_EQ(ReadAll(prompt), "hello");

  CommandResult directory = Kiln("bench " + checkpoint() + " -p 4 -g 2 -r 1 --json " + dir_.string());
  EXPECT_EQ(directory.exit_code, 2);
  EXPECT_EQ(directory.output, "kiln bench: invalid argument: output " + dir_.string() + " is a directory; name a file\n");
}

TEST_F(OutputPathsTest, AFifoIsWrittenToAndStaysAFifo) {
  const std::string fifo = path("logits.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::future<std::string> reader = std::async(std::launch::async, [&] { return ReadAll(fifo); });
  CommandResult run = Kiln("logits " + checkpoint() + " --tokens 2,3 --out " + fifo);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(reader.get().size(), kLogitsBytes);
  struct stat info {};
  ASSERT_EQ(::lstat(fifo.c_str(), &info), 0);
  EXPECT_TRUE(S_ISFIFO(info.st_mode));
  EXPECT_FALSE(fs::exists(fifo + ".tmp." + std::to_string(::getpid())));
}

TEST_F(OutputPathsTest, ADeviceNodeIsWrittenToAndNeverReplaced) {
  // A node of its own (a copy of /dev/null, 1:3) where the test may create one (root); else
  // /dev/null itself, which an unprivileged writer could not replace anyway.
  std::string device = "/dev/null";
  if (::geteuid() == 0 && ::mknod(path("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) device = path("null");
  for (const std::string& arguments :
       {"logits " + checkpoint() + " --tokens 2,3 --out " + device, "bench " + checkpoint() + " -p 4 -g 2 -r 1 --json " + device,
        "run " + checkpoint() + " --prompt-tokens 2,3 --max-tokens 2 --output-tokens --save-logits " + device}) {
    CommandResult run = Kiln(arguments, "", /*quiet=*/true);
    EXPECT_EQ(run.exit_code, 0) << arguments;
    struct stat info {};
    ASSERT_EQ(::lstat(device.c_str(), &info), 0);
    EXPECT_TRUE(S_ISCHR(info.st_mode)) << arguments;
  }
  // A .kiln is written out of order: a device is refused before compiling.
  CommandResult compile = Kiln("compile " + checkpoint() + " -o " + device);
  EXPECT_EQ(compile.exit_code, 2);
  EXPECT_EQ(compile.output, "kiln compile: invalid argument: " + device +
                                " is not a regular file; this output is written out of order and needs one\n");
}

TEST_F(OutputPathsTest, WriteErrorsExitNonZeroWithTheReason) {
  CommandResult logits = Kiln("logits " + checkpoint() + " --tokens 2,3 --out /dev/full");
  EXPECT_EQ(logits.exit_code, 1);
  EXPECT_EQ(logits.output, "kiln logits: i/o error: cannot write /dev/full: No space left on device\n");

  CommandResult bench = Kiln("bench " + checkpoint() + " -p 4 -g 2 -r 1 --json /dev/full", "", /*quiet=*/false);
  EXPECT_EQ(bench.exit_code, 1);
  EXPECT_NE(bench.output.find("kiln bench: i/o error: cannot write /dev/full: No space left on device\n"), std::string::npos)
      << bench.output;

  // The generated text itself: standard output on a full disk (stderr kept in a file).
  const std::string errors = path("stderr");
  const std::string run = std::string(KILN_BINARY) + " run " + kBrownModel + " --prompt hello --max-tokens 4 >/dev/full 2>" + errors;
  int status = std::system(run.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(ReadAll(errors).find("kiln run: cannot write standard output: No space left on device\n"), std::string::npos)
      << ReadAll(errors);
  const std::string tokenize = std::string(KILN_BINARY) + " tokenize " + kBrownModel + " hello >/dev/full 2>" + errors;
  status = std::system(tokenize.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_EQ(ReadAll(errors), "kiln tokenize: cannot write standard output: No space left on device\n");
}

TEST_F(OutputPathsTest, AClosedPipeEndsGenerationWithAnError) {
  // `head -c 1` closes the pipe after one byte; kiln's own status is written to a file.
  const std::string status = path("status"), errors = path("stderr");
  const std::string command = "(" + std::string(KILN_BINARY) + " run " + kBrownModel +
                              " --prompt hello --max-tokens 200 --ignore-eos 2>" + errors + "; echo $? >" + status +
                              ") | head -c 1 >/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  EXPECT_EQ(ReadAll(status), "1\n");
  EXPECT_NE(ReadAll(errors).find("kiln run: cannot write standard output: Broken pipe\n"), std::string::npos) << ReadAll(errors);
}

TEST_F(OutputPathsTest, TemporariesOfADeadCompileAreRemovedAndReported) {
  // A process that is gone: a child that has exited and been reaped.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  const std::string out = path("model.kiln");
  const std::string stale = out + ".tmp." + std::to_string(child);
  const std::string live = out + ".tmp." + std::to_string(::getpid());  // this test is alive
  std::ofstream(stale) << "partial";
  std::ofstream(live) << "in progress";
  CommandResult compile = Kiln("compile " + checkpoint() + " -o " + out);
  EXPECT_EQ(compile.exit_code, 0) << compile.output;
  EXPECT_EQ(compile.output.rfind("kiln compile: removed " + stale + ", left by an interrupted write (its process is gone)\n", 0), 0u)
      << compile.output;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::is_regular_file(out));
}

}  // namespace
}  // namespace kiln
