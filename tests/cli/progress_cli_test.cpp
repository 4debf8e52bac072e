// Long work seen from outside: `kiln run`'s prompt progress on a terminal (and nothing on a
// pipe), Ctrl-C during a long prefill (what the summary counts, the exit status), and
// `kiln bench` rows printed as they are measured and kept on Ctrl-C. kiln runs as a child
// process with its output on pipes (or its stderr on a pseudo-terminal) and gets SIGINT.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln_process.h"

namespace kiln {
namespace {

using Clock = std::chrono::steady_clock;

const std::string kBundled = std::string(KILN_FIXTURES_DIR) + "/../../models/brown-gemma4";

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A kiln process whose stdout and stderr are read separately.
class Child {
 public:
  explicit Child(const std::vector<std::string>& arguments) {
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      const int null = open("/dev/null", O_RDONLY);
      dup2(null, STDIN_FILENO);
      dup2(out[1], STDOUT_FILENO);
      dup2(err[1], STDERR_FILENO);
      close(out[0]), close(err[0]), close(out[1]), close(err[1]);
      std::vector<char*> argv{const_cast<char*>(KILN_BINARY)};
      for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
      argv.push_back(nullptr);
      execv(KILN_BINARY, argv.data());
      _exit(127);
    }
    close(out[1]), close(err[1]);
    out_fd_ = out[0], err_fd_ = err[0];
  }
  ~Child() {
    if (pid_ > 0 && exit_code_ == kRunning) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  // Reads both pipes until `done()` holds or `timeout` passes; false on timeout.
  bool ReadUntil(const std::function<bool()>& done, std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() > deadline || !ReadSome(100)) return done();
    }
    return true;
  }
  bool Running() { return waitpid(pid_, nullptr, WNOHANG) == 0; }
  void Interrupt() { kill(pid_, SIGINT); }
  // Reads to the end of both pipes and reaps the process: its exit status (-1: killed by a signal).
  int Finish() {
    while (ReadSome(1000)) {
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  static constexpr int kRunning = -2;
  // One poll of the open pipes; false once both are at their end.
  bool ReadSome(int timeout_ms) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (out_fd_ < 0 && err_fd_ < 0) return false;
    if (poll(fds, 2, timeout_ms) <= 0) return true;
    char buffer[4096];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      const ssize_t count = read(fds[i].fd, buffer, sizeof(buffer));
      std::string& text = i == 0 ? out_ : err_;
      int& fd = i == 0 ? out_fd_ : err_fd_;
      if (count > 0) {
        text.append(buffer, static_cast<size_t>(count));
      } else {
        close(fd);
        fd = -1;
      }
    }
    return true;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  int exit_code_ = kRunning;
  std::string out_, err_;
};

// Plain text of about `words` tokens for the bundled model (one token per common word).
std::string LongPromptFile(int repeats) {
  const std::string path = (std::filesystem::temp_directory_path() / ("kiln_long_prompt_" + std::to_string(repeats) + ".txt")).string();
  std::ofstream file(path);
  for (int i = 0; i < repeats; ++i) file << "The jury said that the city of Atlanta ";
  return path;
}

TEST(RunCommand, CtrlCDuringALongPromptCountsTheTokensProcessed) {
  // 1500 x 9 words: about 13,500 tokens, prefilled in chunks of 512 for several seconds on the
  // bundled model. --verbose prints the prompt ids just before the prefill starts.
  Child run({"run", kBundled, "--prompt-file", LongPromptFile(1500), "--ctx", "16384", "--max-tokens", "4", "--verbose"});
  ASSERT_TRUE(run.ReadUntil([&] { return Contains(run.err(), "prompt ids"); }, std::chrono::seconds(60))) << run.err();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(run.Running()) << "the prefill ended before Ctrl-C";
  run.Interrupt();
  EXPECT_EQ(run.Finish(), 130) << run.err();
  EXPECT_EQ(run.out(), "\n");  // no token was generated
  EXPECT_TRUE(Contains(run.err(), "stop reason  cancelled during the prompt (stopped by the user)\n")) << run.err();
  std::smatch prompt;
  const std::string err = run.err();
  ASSERT_TRUE(std::regex_search(err, prompt, std::regex("prompt       (\\d+) of (\\d+) tokens \\(0 reused\\), ([0-9.]+) s, ([0-9.]+) tok/s\n")))
      << err;
  const long processed = std::stol(prompt[1]), total = std::stol(prompt[2]);
  // Whole chunks of 512 (the default --chunk), fewer than the prompt; the rate over those.
  EXPECT_LT(processed, total);
  EXPECT_GT(total, 10000);
  EXPECT_EQ(processed % 512, 0);
  EXPECT_NEAR(std::stod(prompt[4]), processed / std::stod(prompt[3]), 0.1 * processed / std::stod(prompt[3]) + 0.1);
  EXPECT_TRUE(Contains(err, "generation   0 tokens, 0.000 s, 0.0 tok/s\nfirst token  none\n")) << err;
  EXPECT_FALSE(Contains(err, "nan") || Contains(err, "inf")) << err;
}

TEST(RunCommand, PromptProgressOnATerminalOnly) {
  // 600 tokens in chunks of 64: ten progress updates on a terminal, cleared before the text.
  const std::vector<std::string> arguments = {"run", kBundled, "--prompt-file", LongPromptFile(66), "--chunk", "64",
                                              "--max-tokens", "2", "--temperature", "0"};
  int terminal = -1;
  const pid_t pid = forkpty(&terminal, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // stderr on the terminal, stdout to /dev/null
    const int null = open("/dev/null", O_RDWR);
    dup2(null, STDOUT_FILENO);
    std::vector<char*> argv{const_cast<char*>(KILN_BINARY)};
    for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    execv(KILN_BINARY, argv.data());
    _exit(127);
  }
  std::string seen;
  char buffer[4096];
  ssize_t count;
  while ((count = read(terminal, buffer, sizeof(buffer))) > 0) seen.append(buffer, static_cast<size_t>(count));  // EIO at the end
  close(terminal);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << seen;
  EXPECT_TRUE(Contains(seen, "\rprompt 0/5")) << seen;  // <bos> + 66 x 9 words
  EXPECT_TRUE(std::regex_search(seen, std::regex("\rprompt 64/5\\d\\d tokens \\(1\\d%\\), \\d+ tok/s"))) << seen;
  // Cleared (blanks, back to the start) before the summary.
  const size_t summary = seen.find("stop reason  max_tokens after 2 tokens");
  ASSERT_NE(summary, std::string::npos) << seen;
  EXPECT_LT(seen.rfind("prompt ", summary), summary);
  EXPECT_TRUE(std::regex_search(seen.substr(0, summary), std::regex("\r +\r$"))) << seen;

  // Piped: the same run prints no progress at all.
  std::string command = "run " + kBundled + " --prompt-file " + arguments[3] + " --chunk 64 --max-tokens 2 --temperature 0";
  testing::CommandResult piped = testing::Kiln(command);
  EXPECT_EQ(piped.exit_code, 0) << piped.output;
  EXPECT_FALSE(Contains(piped.output, "\r")) << piped.output;
  EXPECT_FALSE(Contains(piped.output, "prompt 64/")) << piped.output;
}

TEST(BenchCommand, RowsArriveAsMeasuredAndCtrlCKeepsThem) {
  // pp64 takes a moment, pp16384 (three runs of a 16K prompt) far longer: pp64's row must be on
  // stdout while pp16384 is still being measured.
  const std::string json = (std::filesystem::temp_directory_path() / "kiln_bench_interrupted.json").string();
  std::filesystem::remove(json);
  Child bench({"bench", kBundled, "-p", "64,16384", "-g", "0", "-r", "2", "--json", json});
  ASSERT_TRUE(bench.ReadUntil([&] { return Contains(bench.out(), "| pp64     |    2 |"); }, std::chrono::seconds(120)))
      << bench.out() << bench.err();
  EXPECT_TRUE(bench.Running()) << "pp16384 was measured before pp64's row arrived";
  bench.Interrupt();
  EXPECT_EQ(bench.Finish(), 130) << bench.err();
  EXPECT_TRUE(Contains(bench.out(), "| test     | reps |   t/s median |          min |          max |\n")) << bench.out();
  EXPECT_FALSE(Contains(bench.out(), "| pp16384")) << bench.out();
  EXPECT_TRUE(Contains(bench.out(), "\npeak     ")) << bench.out();
  EXPECT_TRUE(Contains(bench.err(), "kiln bench: stopped by the user; 1 of 2 tests measured\n")) << bench.err();
  std::ifstream in(json);
  const auto document = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(document.is_discarded());
  EXPECT_EQ(document["interrupted"], true);
  ASSERT_EQ(document["results"].size(), 1u);
  EXPECT_EQ(document["results"][0]["test"], "pp64");
  EXPECT_EQ(document["results"][0]["tokens_per_second"]["values"].size(), 2u);
  std::filesystem::remove(json);
}

}  // namespace
}  // namespace kiln
