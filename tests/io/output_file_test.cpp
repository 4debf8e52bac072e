// io/output_file.h: temporaries renamed into place, removed by SIGINT/SIGTERM/SIGHUP in a real
// child process, left by SIGKILL and then removed by RemoveStaleTemporaries; CheckOutputPath.
#include "io/output_file.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_output_file_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Forks a writer that creates `out`, writes to it, tells the parent, and waits to be killed.
  // Returns its pid once the temporary exists.
  pid_t StartWriter(const std::string& out) {
    int ready[2];
    EXPECT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    if (child == 0) {
      ::close(ready[0]);
      auto file = OutputFile::Create(out);
      if (!file || !file->Write("partial", 7).ok()) ::_exit(90);
      if (::write(ready[1], "r", 1) != 1) ::_exit(91);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char byte = 0;
    EXPECT_EQ(::read(ready[0], &byte, 1), 1);
    ::close(ready[0]);
    return child;
  }

  fs::path dir_;
};

TEST_F(OutputFileTest, CommitReplacesTheFileAndKeepsItsPermissions) {
  const std::string out = path("out.bin");
  std::ofstream(out) << "old";
  ::chmod(out.c_str(), 0640);
  {
    auto file = OutputFile::Create(out);
    ASSERT_TRUE(file.has_value()) << file.error().ToString();
    ASSERT_TRUE(file->Write("new", 3).ok());
    EXPECT_EQ(ReadAll(out), "old");  // nothing visible before Commit
    ASSERT_TRUE(file->Commit().ok());
  }
  EXPECT_EQ(ReadAll(out), "new");
  struct stat info {};
  ASSERT_EQ(::stat(out.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0640u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(OutputFileTest, AnUncommittedFileLeavesTheOldOneAndNoTemporary) {
  const std::string out = path("out.bin");
  std::ofstream(out) << "old";
  {
    auto file = OutputFile::Create(out);
    ASSERT_TRUE(file.has_value());
    ASSERT_TRUE(file->Write("new", 3).ok());
  }
  EXPECT_EQ(ReadAll(out), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(OutputFileTest, WriteErrorsNameThePathAndTheReason) {
  auto full = OutputFile::Create("/dev/full");
  ASSERT_TRUE(full.has_value());
  EXPECT_FALSE(full->seekable());
  Status written = full->Write("x", 1);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.error().ToString(), "i/o error: cannot write /dev/full: No space left on device");
  Status at = full->WriteAt(0, "x", 1);
  ASSERT_FALSE(at.ok());
  EXPECT_EQ(at.code(), ErrorCode::kUnsupported);
}

class OutputFileSignalTest : public OutputFileTest, public ::testing::WithParamInterface<int> {};

TEST_P(OutputFileSignalTest, AnInterruptRemovesTheTemporary) {
  const std::string out = path("model.kiln");
  const pid_t child = StartWriter(out);
  const std::string temp = out + ".tmp." + std::to_string(child);
  EXPECT_TRUE(fs::exists(temp));
  ASSERT_EQ(::kill(child, GetParam()), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + GetParam());
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(fs::exists(out));
}

INSTANTIATE_TEST_SUITE_P(Signals, OutputFileSignalTest, ::testing::Values(SIGINT, SIGTERM, SIGHUP));

TEST_F(OutputFileTest, SigkillLeavesATemporaryThatTheNextWriterRemoves) {
  const std::string out = path("model.kiln");
  const pid_t child = StartWriter(out);
  const std::string temp = out + ".tmp." + std::to_string(child);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(ReadAll(temp), "partial");
  // A temporary of a live process (this one) and an unrelated name stay.
  const std::string live = out + ".tmp." + std::to_string(::getpid());
  const std::string other = out + ".tmp.notapid";
  std::ofstream(live) << "x";
  std::ofstream(other) << "x";
  EXPECT_EQ(RemoveStaleTemporaries(out), std::vector<std::string>{temp});
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(RemoveStaleTemporaries(out).empty());
}

TEST_F(OutputFileTest, CheckOutputPathRefusesInputsAndTheirInsides) {
  fs::create_directories(path("ckpt/sub"));
  std::ofstream(path("ckpt/config.json")) << "{}";
  fs::create_symlink(path("ckpt"), path("alias"));
  EXPECT_TRUE(CheckOutputPath(path("out.kiln"), {path("ckpt")}).ok());
  EXPECT_TRUE(CheckOutputPath(path("ckpt2/out.kiln"), {path("ckpt")}).ok());  // a sibling sharing a prefix
  EXPECT_TRUE(CheckOutputPath(path("out.kiln"), {"", path("missing")}).ok());

  Status inside = CheckOutputPath(path("alias/sub/new.kiln"), {path("ckpt")});
  ASSERT_FALSE(inside.ok());
  EXPECT_EQ(inside.error().message(),
            "output " + path("alias/sub/new.kiln") + " is inside the input directory " + path("ckpt") + "; write it somewhere else");
  Status same = CheckOutputPath(path("alias/config.json"), {path("ckpt/config.json")});
  ASSERT_FALSE(same.ok());
  EXPECT_EQ(same.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(same.error().message(), "output " + path("alias/config.json") + " is the input " + path("ckpt/config.json") +
                                        "; writing it would destroy the input");
  EXPECT_TRUE(CheckOutputPath("/dev/stdout", {path("ckpt")}).ok());
}

}  // namespace
}  // namespace kiln
