// `kiln tokenize` and `kiln detokenize`: the model's tokenizer from the command line.
//
//   kiln tokenize MODEL TEXT [--ids-only] [--chat] [--no-add-special] [--no-parse-special]
//   kiln detokenize MODEL ID... [--skip-special]
//
// MODEL is a directory holding tokenizer.json (and optionally tokenizer_config.json,
// chat_template.jinja, config.json, generation_config.json) or a .gguf file. TEXT "-" reads
// standard input. tokenize prints one "id<TAB>piece" line per token (pieces JSON-quoted), or
// with --ids-only the ids space-separated on one line. --chat renders the model's chat template
// first: TEXT is one user message, or a JSON list of {"role", "content"} messages.
// detokenize takes ids as separate arguments or in one argument separated by spaces/commas.
// Errors go to stderr as "kiln tokenize: <message>"; exit status 2 for usage errors, 1 for others.
// argv[0] is the subcommand name.
// `load` reads MODEL's tokenizer (the CLI passes one that also opens .kiln artifacts).
#pragma once

#include <functional>
#include <string>

#include "tokenizer/model_tokenizer.h"

using TokenizerLoader = std::function<kiln::Result<kiln::tokenizer::ModelTokenizer>(const std::string& model)>;

int RunTokenizeCommand(int argc, char** argv, const TokenizerLoader& load);
int RunDetokenizeCommand(int argc, char** argv, const TokenizerLoader& load);
