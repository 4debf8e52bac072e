#include "engine/mtp_draft.h"

#include <algorithm>
#include <filesystem>

#include "engine/gguf_source.h"
#include "io/gguf_model.h"
#include "io/json_file.h"
#include "models/gemma4_assistant.h"

namespace kiln {

Status CheckMtpDrafter(const Runner& runner) {
  if (runner.has_drafter()) return Status::Ok();
  return Error(ErrorCode::kInvalidArgument,
               "speculative type mtp needs the model loaded with its MTP assistant (--draft ASSISTANT, or compiled in by kiln compile --draft)");
}

bool IsMtpAssistant(const std::string& path) {
  std::error_code ec;
  if (LooksLikeGguf(path)) {
    Result<GgufModel> model = GgufModel::Open(path);
    if (!model) return false;
    Result<std::string> architecture = model->metadata().GetString("general.architecture");
    if (!architecture) return false;
    for (const ModelFamily& family : ModelFamilies()) {
      if (!family.gguf_assistant_architecture.empty() && family.gguf_assistant_architecture == *architecture) return true;
    }
    return false;
  }
  if (!std::filesystem::is_directory(path, ec)) return false;
  Result<nlohmann::json> config = ReadJsonFile((std::filesystem::path(path) / "config.json").string());
  return config.has_value() && IsGemma4AssistantConfig(*config);
}

Status DraftWithMtp(Runner& runner, std::span<const MtpJob> jobs) {
  const size_t width = static_cast<size_t>(runner.hidden_size());
  int64_t rounds = 0;
  for (const MtpJob& job : jobs) {
    if (job.max <= 0) continue;
    if (job.hidden.size() != width) {
      return Error(ErrorCode::kInvalidArgument, "an MTP draft continues from a hidden state of " + std::to_string(width) + " floats, got " +
                                                    std::to_string(job.hidden.size()));
    }
    rounds = std::max(rounds, job.max);
  }
  // Each job's row of the step: its last token and hidden state (the target's at first, then the
  // drafter's own), gathered for the jobs still drafting.
  std::vector<Runner::DraftEntry> entries;
  std::vector<const MtpJob*> owners;
  std::vector<float> hidden;
  std::vector<int32_t> drafted;
  std::vector<std::vector<float>> state(jobs.size());
  for (int64_t k = 0; k < rounds; ++k) {
    entries.clear();
    owners.clear();
    hidden.clear();
    for (size_t j = 0; j < jobs.size(); ++j) {
      const MtpJob& job = jobs[j];
      if (job.max <= k) continue;
      if (k == 0) state[j].assign(job.hidden.begin(), job.hidden.end());
      hidden.insert(hidden.end(), state[j].begin(), state[j].end());
      entries.push_back({job.sequence, k == 0 ? job.token : job.drafts->back()});
      owners.push_back(&job);
    }
    drafted.resize(entries.size());
    TRY(runner.Draft(entries, hidden, drafted));
    for (size_t i = 0; i < owners.size(); ++i) {
      const size_t j = static_cast<size_t>(owners[i] - jobs.data());
      std::copy(hidden.begin() + static_cast<std::ptrdiff_t>(i * width), hidden.begin() + static_cast<std::ptrdiff_t>((i + 1) * width),
                state[j].begin());
      owners[i]->drafts->push_back(drafted[i]);
    }
  }
  return Status::Ok();
}

}  // namespace kiln
