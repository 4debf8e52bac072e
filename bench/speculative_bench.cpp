// Speculative decoding on a real model: plain greedy decoding against prompt lookup and an MTP
// drafter with several draft sizes, on prose and on an input-grounded task, same process, same
// model.
//
//   kiln_spec_bench [MODEL] [--device cpu|cuda] [--tokens N] [--reps R] [--threads T] [--mtp ASSISTANT]
//
// MODEL defaults to the bundled model; --mtp ASSISTANT adds MTP rows (default: MODEL/mtp when it
// holds an assistant). Two prompts: "prose" continues an original passage; "grounded" gives a
// passage twice and the start of a third copy, so the continuation can be taken from the input.
// For each, plain decoding and each drafter with --draft-max 2, 4, 8 generate N tokens (median of
// R runs); the outputs must be identical (the bench fails otherwise), and the table gives
// tokens/s, target steps, drafted and accepted tokens, the acceptance by draft position and the
// speedup over plain.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/model_text.h"
#include "engine/mtp_draft.h"

namespace kiln {
namespace {

constexpr const char kPassage[] =
    "The river rose for three days after the storm, and the people of the valley moved their cattle to the "
    "high pasture above the mill. On the fourth morning the water began to fall, leaving a line of mud on every "
    "fence post and a smell of wet timber in the air. The miller walked the length of his dam before breakfast "
    "and found that only one of the gates had been lost.";

struct Row {
  std::string task;
  SpeculativeType type = SpeculativeType::kNone;
  int draft_max = 0;
  double tokens_per_second = 0;
  int64_t steps = 0, drafted = 0, accepted = 0;
  std::vector<int64_t> drafted_by_position, accepted_by_position;
};

// "1: 80%, 2: 55%, 3: 31%": of the rounds that drafted a position, the share accepted there.
std::string ByPosition(const Row& row) {
  std::string text;
  for (size_t i = 0; i < row.drafted_by_position.size() && i < 8; ++i) {
    if (row.drafted_by_position[i] == 0) continue;
    char part[32];
    std::snprintf(part, sizeof(part), "%s%zu: %.0f%%", text.empty() ? "" : ", ", i + 1,
                  100.0 * static_cast<double>(row.accepted_by_position[i]) / static_cast<double>(row.drafted_by_position[i]));
    text += part;
  }
  return text.empty() ? "-" : text;
}

int Main(int argc, char** argv) {
  std::string path = KILN_DEFAULT_MODEL_DIR, device = "cpu", assistant;
  int64_t tokens = 128, reps = 3;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--device") device = value();
    else if (arg == "--tokens") tokens = std::stoll(value());
    else if (arg == "--reps") reps = std::stoll(value());
    else if (arg == "--threads") threads = std::stoi(value());
    else if (arg == "--mtp") assistant = value();
    else if (arg.rfind("--", 0) == 0) {
      std::fprintf(stderr, "kiln_spec_bench: unknown option %s\n", arg.c_str());
      return 2;
    } else {
      path = arg;
    }
  }
  LoadOptions load;
  load.device = device;
  load.max_context = 1024;
  load.max_tokens = 256;
  load.num_threads = threads;
  if (assistant.empty() && IsMtpAssistant(path + "/mtp")) assistant = path + "/mtp";
  load.assistant = assistant;
  auto model = LoadedModel::Load(path, load);
  if (!model) {
    std::fprintf(stderr, "kiln_spec_bench: %s\n", model.error().ToString().c_str());
    return 1;
  }
  auto text = LoadModelText(**model);
  if (!text || !text->tokenizer) {
    std::fprintf(stderr, "kiln_spec_bench: %s needs a tokenizer\n", path.c_str());
    return 1;
  }
  auto session = (*model)->NewSession();
  if (!session) {
    std::fprintf(stderr, "kiln_spec_bench: %s\n", session.error().ToString().c_str());
    return 1;
  }
  Generator generator(*session, nullptr);
  const std::string passage = kPassage;
  const std::vector<std::pair<std::string, std::string>> tasks = {
      {"prose", passage},
      {"grounded", passage + "\n\n" + passage + "\n\n" + passage.substr(0, 60)},
  };
  std::vector<Row> rows;
  for (const auto& [task, prompt_text] : tasks) {
    const std::vector<int32_t> prompt = EncodePlain(*text->tokenizer, prompt_text);
    std::vector<int32_t> plain_tokens;
    std::vector<std::pair<SpeculativeType, int>> runs = {{SpeculativeType::kNone, 0}};
    for (SpeculativeType type : {SpeculativeType::kNgram, SpeculativeType::kMtp}) {
      if (type == SpeculativeType::kMtp && assistant.empty()) continue;
      for (int draft_max : {2, 4, 8}) runs.push_back({type, draft_max});
    }
    for (const auto& [type, draft_max] : runs) {
      GenerateOptions options;
      options.max_new_tokens = tokens;
      options.ignore_eos = true;
      options.speculative.type = type;
      if (draft_max > 0) options.speculative.draft_max = draft_max;
      std::vector<double> rates;
      GenerationResult last;
      for (int64_t rep = 0; rep <= reps; ++rep) {  // rep 0 warms up
        generator.Reset();
        auto result = generator.Generate(prompt, options);
        if (!result) {
          std::fprintf(stderr, "kiln_spec_bench: %s\n", result.error().ToString().c_str());
          return 1;
        }
        // Decode only: the tokens after the first over the time after it.
        if (rep > 0) rates.push_back(static_cast<double>(result->tokens.size() - 1) / result->decode_seconds);
        last = std::move(*result);
      }
      if (draft_max == 0) {
        plain_tokens = last.tokens;
      } else if (last.tokens != plain_tokens) {
        std::fprintf(stderr, "kiln_spec_bench: %s with %s drafts of %d differs from plain decoding\n", task.c_str(),
                     SpeculativeTypeName(type), draft_max);
        return 1;
      }
      std::sort(rates.begin(), rates.end());
      rows.push_back({task, type, draft_max, rates[rates.size() / 2], last.decode_steps, last.draft_tokens, last.accepted_draft_tokens,
                      last.drafted_by_position, last.accepted_by_position});
    }
  }
  std::printf("model %s on %s (%s), %lld tokens, median of %lld%s%s\n\n", path.c_str(), (*model)->device().c_str(),
              (*model)->program().target.c_str(), static_cast<long long>(tokens), static_cast<long long>(reps),
              assistant.empty() ? "" : ", MTP assistant ", assistant.c_str());
  std::printf("| task | drafter | draft max | decode tok/s | steps | drafted | accepted | acceptance | by draft position | speedup |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---|---:|\n");
  double plain_rate = 0;
  for (const Row& row : rows) {
    if (row.draft_max == 0) plain_rate = row.tokens_per_second;
    const double acceptance = row.drafted > 0 ? 100.0 * static_cast<double>(row.accepted) / static_cast<double>(row.drafted) : 0;
    std::printf("| %s | %s | %s | %.1f | %lld | %lld | %lld | %.1f%% | %s | %.2fx |\n", row.task.c_str(),
                row.draft_max == 0 ? "plain" : SpeculativeTypeName(row.type), row.draft_max == 0 ? "-" : std::to_string(row.draft_max).c_str(),
                row.tokens_per_second, static_cast<long long>(row.steps), static_cast<long long>(row.drafted),
                static_cast<long long>(row.accepted), acceptance, ByPosition(row).c_str(), row.tokens_per_second / plain_rate);
  }
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) { return kiln::Main(argc, argv); }
