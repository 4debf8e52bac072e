#include "cuda_verify_bench.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <span>
#include <string>

#include "cuda_bench_util.h"

namespace kiln {

Result<nlohmann::json> BenchVerify(Session& session, int64_t position, const std::vector<int32_t>& tokens,
                                   const std::vector<int64_t>& verifies, int64_t steps, double decode_seconds) {
  using Clock = std::chrono::steady_clock;
  nlohmann::json out = nlohmann::json::object();
  std::printf("  verify steps @%lld (one decode step %.3f ms); speedup derived for a free drafter at acceptance 0.5 / 0.7 / 0.9:\n",
              static_cast<long long>(position + 1), 1e3 * decode_seconds);
  for (int64_t count : verifies) {
    if (count < 1 || count > static_cast<int64_t>(tokens.size())) {
      return Error(ErrorCode::kInvalidArgument, "--verify " + std::to_string(count) + " is not in [1, " + std::to_string(tokens.size()) + "]");
    }
    const std::span<const int32_t> ids(tokens.data(), static_cast<size_t>(count));
    std::vector<float> logits(static_cast<size_t>(count * session.vocab_size()));
    std::vector<double> seconds;
    for (int64_t i = 0; i < steps + 3; ++i) {
      const auto start = Clock::now();
      TRY(session.StepInto(ids, /*all_positions=*/true, logits));
      if (i >= 3) seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      TRY(session.Rewind(position));
    }
    const double step = Median(seconds), cost = step / decode_seconds;
    const double rates[3] = {0.5, 0.7, 0.9};
    double speedup[3];
    for (int i = 0; i < 3; ++i) speedup[i] = (1.0 - std::pow(rates[i], static_cast<double>(count))) / (1.0 - rates[i]) / cost;
    std::printf("    %2lld tokens (k = %2lld): %8.3f ms = %5.2fx a decode step; derived speedup %.2fx / %.2fx / %.2fx\n",
                static_cast<long long>(count), static_cast<long long>(count - 1), 1e3 * step, cost, speedup[0], speedup[1], speedup[2]);
    out[std::to_string(count)] = {{"step_seconds", step}, {"decode_steps", cost},
                                  {"derived_speedup_free_drafter", {{"0.5", speedup[0]}, {"0.7", speedup[1]}, {"0.9", speedup[2]}}}};
  }
  return out;
}

Result<nlohmann::json> BenchDrafter(Session& session, int32_t token, int64_t steps, double decode_seconds, const nlohmann::json& verify) {
  using Clock = std::chrono::steady_clock;
  Runner& runner = session.runner();
  std::vector<float> hidden(static_cast<size_t>(runner.hidden_size()), 0.01f);
  const Runner::DraftEntry entry{&session.sequence(), token};
  int32_t drafted = 0;
  std::vector<double> seconds;
  for (int64_t i = 0; i < steps + 3; ++i) {
    const auto start = Clock::now();
    TRY(runner.Draft(std::span<const Runner::DraftEntry>(&entry, 1), hidden, std::span<int32_t>(&drafted, 1)));
    if (i >= 3) seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  const double draft = Median(seconds), share = draft / decode_seconds;
  std::printf("  MTP drafter step: %8.3f ms = %5.1f%% of a decode step; with T - 1 drafter steps a round, derived speedup at acceptance "
              "0.5 / 0.7 / 0.9:\n", 1e3 * draft, 1e2 * share);
  nlohmann::json out = {{"step_seconds", draft}, {"decode_steps", share}};
  for (const auto& [count_text, row] : verify.items()) {
    const int64_t count = std::stoll(count_text);
    const double cost = row["decode_steps"].get<double>() + static_cast<double>(count - 1) * share;
    const double rates[3] = {0.5, 0.7, 0.9};
    double speedup[3];
    for (int i = 0; i < 3; ++i) speedup[i] = (1.0 - std::pow(rates[i], static_cast<double>(count))) / (1.0 - rates[i]) / cost;
    std::printf("    %2lld tokens (k = %2lld): round %5.2fx a decode step; derived speedup %.2fx / %.2fx / %.2fx\n", static_cast<long long>(count),
                static_cast<long long>(count - 1), cost, speedup[0], speedup[1], speedup[2]);
    out["rounds"][count_text] = {{"decode_steps", cost}, {"derived_speedup", {{"0.5", speedup[0]}, {"0.7", speedup[1]}, {"0.9", speedup[2]}}}};
  }
  return out;
}

}  // namespace kiln
