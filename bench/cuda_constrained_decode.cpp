#include "cuda_constrained_decode.h"

#include <chrono>

#include "constraint/constraint.h"
#include "constraint/vocabulary.h"
#include "cuda_bench_util.h"
#include "engine/output_constraint.h"
#include "tokenizer/model_tokenizer.h"
#include "tool_call_schema.h"

namespace kiln {

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace

Result<std::shared_ptr<const constraint::TokenVocabulary>> LoadConstraintVocabulary(const std::string& gguf_path) {
  TRY_ASSIGN(tokenizer::ModelTokenizer model, tokenizer::LoadModelTokenizer(gguf_path));
  return constraint::TokenVocabulary::FromTokenizer(model.tokenizer, model.stop_token_ids);
}

Result<std::vector<ConstrainedDecodeRun>> RunConstrainedDecodes(Session& session, int64_t start_length, int32_t first, int64_t steps,
                                                                const std::shared_ptr<const constraint::TokenVocabulary>& vocabulary) {
  std::vector<ConstrainedDecodeRun> runs;
  for (const char* name : {"json", "schema"}) {
    TRY_ASSIGN(auto grammar, std::string(name) == "json" ? constraint::CompileAnyJson() : constraint::CompileJsonSchema(kToolCallSchema));
    const ConstraintSpec spec{grammar, vocabulary};
    std::vector<double> mask_seconds;
    int64_t tokens = 0;
    double seconds = 0.0;
    while (tokens < steps) {
      TRY(session.Rewind(start_length));
      OutputConstraint constraint(spec);
      Status accepted = Status::Ok();
      const auto start = Clock::now();
      auto decoded = session.DecodeOnDevice(
          first, DeviceSampling{}, steps - tokens, 4,
          [&](const SampledToken& token) {
            accepted = constraint.Accept(token.id);
            return accepted.ok() && !constraint.Terminated();
          },
          [&](std::span<uint64_t> allowed) {
            const auto mask_start = Clock::now();
            Status filled = constraint.FillAllowed(allowed);
            mask_seconds.push_back(Seconds(mask_start));
            return filled;
          });
      seconds += Seconds(start);
      if (!decoded) return decoded.error();
      TRY(accepted);
      if (*decoded == 0) return Error(ErrorCode::kInternal, "the constrained decode ran no step");
      tokens += *decoded;
    }
    std::vector<double> sorted = mask_seconds;
    std::sort(sorted.begin(), sorted.end());
    runs.push_back({name, static_cast<double>(tokens) / seconds, tokens, 1e6 * Median(mask_seconds),
                    1e6 * sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)]});
  }
  TRY(session.Rewind(start_length));
  return runs;
}

}  // namespace kiln
