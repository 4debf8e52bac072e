// kiln subcommands. Each takes its own argv (argv[0] = the subcommand name) and returns the
// process exit status: 0 success, 1 failure (message on stderr), 2 usage error.
#pragma once

namespace kiln::cli {

int RunInspect(int argc, char** argv);
int RunLogits(int argc, char** argv);
int RunCompile(int argc, char** argv);
int RunVerify(int argc, char** argv);
int RunRun(int argc, char** argv);
int RunChat(int argc, char** argv);
int RunBench(int argc, char** argv);
int RunBatch(int argc, char** argv);
int RunServe(int argc, char** argv);
int RunPerplexity(int argc, char** argv);  // needs the tokenizer library (KILN_HAVE_TOKENIZER)

}  // namespace kiln::cli
