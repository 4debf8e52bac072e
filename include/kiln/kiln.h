// kiln's public C++ API: load a model once, then generate for many requests at the same time.
//
//   TRY_ASSIGN(auto model, kiln::Model::Load("models/brown-gemma4"));
//   kiln::GenerationRequest request;
//   request.messages = {{"user", "Tell me about the jury."}};
//   request.max_tokens = 64;
//   TRY_ASSIGN(kiln::Completion done, model->Generate(request));      // blocking
//
//   request.on_token = [](const kiln::TokenEvent& t) { std::cout << t.text << std::flush; };
//   request.on_done = [](const kiln::Completion& c) { ... };
//   TRY_ASSIGN(kiln::RequestId id, model->Submit(std::move(request))); // returns at once
//   model->Cancel(id);                                                 // from any thread
//
// A Model places its weights on its device once; every request is a sequence on it, scheduled
// with continuous batching (up to ModelOptions::parallel sequences per step, chunked prefill,
// a prefix cache across requests). Submit, Cancel, Generate and the accessors may be called from
// any thread; callbacks run on the model's own driver thread, one at a time, and must not block
// for long (they delay every sequence). Destroying the Model lets submitted requests finish.
//
// Errors are values (kiln/status.h): Load and Submit return what can never work (a missing or
// malformed model, invalid options, a prompt longer than the context) as an Error naming what
// was expected and what was found; a request that fails while running ends with
// Completion::error.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln {

struct ModelOptions {
  std::string device;           // "cpu" | "cuda"; empty: a .kiln file's target, else the CPU
  int64_t context = 4096;       // positions one sequence may hold
  int64_t chunk = 512;          // tokens per step, over all sequences
  int64_t parallel = 8;         // sequences per step (and running at once)
  int threads = 0;              // CPU threads; 0 = all
  bool prefix_cache = true;     // reuse the KV of prompt prefixes across requests
  std::string kv_cache;         // "" (the target's choice), "f32" or "bf16"
  // Quantized weights for a checkpoint (docs/quantization.md): "" (as the checkpoint stores them)
  // or a recipe, "q8_0", "q4_0", "q4_k_m", "q6_k" or "fp8". kInvalidArgument for another name,
  // for a .kiln file (its weights were packed when it was compiled) or an already quantized GGUF.
  std::string quant;
  // Speculative decoding for every request (docs/speculative.md): "" (off), "ngram" (prompt
  // lookup: drafts copied from earlier in the prompt and output), "draft" (draft_model's greedy
  // drafts) or "mtp" (the Gemma 4 MTP assistant at draft_model, compiled into this model and
  // reading its KV cache). Lossless: the same tokens.
  std::string speculative;
  // For "draft" (implied when speculative is empty): a smaller model with the same vocabulary (a
  // checkpoint directory, GGUF or .kiln file) that drafts for every request. It is loaded with
  // this model's device, context, chunk, parallel, threads, kv_cache and quant, and given its own
  // KV pool for the same number of sequences at the full context. For "mtp": the assistant's
  // checkpoint directory.
  std::string draft_model;
  int draft_max = 8;            // tokens drafted per step
};

// A call an assistant message made (OpenAI's tool_calls entry).
struct ToolCall {
  std::string id;         // the id a "tool" message answers (may be empty)
  std::string name;       // the function's
  std::string arguments;  // a JSON object, as text
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool"
  std::string content;
  std::vector<ToolCall> tool_calls = {};  // assistant: the calls it made
  std::string tool_call_id = {};          // tool: the call this message answers
  std::string name = {};                  // tool: the function that answered
  std::string reasoning = {};             // assistant: its thinking (the template decides if it is shown)
};

struct SamplingParams {
  float temperature = 0.0f;         // 0 = greedy
  int64_t top_k = 0;                // 0 = off
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off
  int64_t repetition_window = 64;   // tokens the penalty looks back (0 = all)
  uint64_t seed = 0;
  // OpenAI's: a generated token seen c > 0 times loses c x frequency + presence from its logit.
  float presence_penalty = 0.0f;    // in [-2, 2]; 0 = off
  float frequency_penalty = 0.0f;   // in [-2, 2]; 0 = off
};

struct TokenEvent {
  int32_t id = -1;      // -1: no token, only text held back until the end
  std::string text;     // text that became final with this token (may be empty)
  int64_t index = 0;    // 0 for the first generated token
  float logprob = 0.0f;                                  // when top_logprobs > 0
  std::vector<std::pair<int32_t, float>> top_logprobs;   // (id, log-probability), most likely first
};

using RequestId = uint64_t;

struct Completion {
  RequestId id = 0;
  std::vector<int32_t> tokens;  // generated ids, a final end-of-sequence id included
  std::string text;
  // "eos", "stop_string", "max_tokens", "context_full", "cancelled"
  std::string stop_reason;
  std::string stop_string;      // which one matched, for "stop_string"
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;    // prompt tokens taken from the prefix cache
  double prompt_seconds = 0;    // from submission until the prompt was in
  double first_token_seconds = 0;
  double generation_seconds = 0;  // after the first token
  int64_t draft_tokens = 0;       // speculative decoding: drafted, and of those accepted
  int64_t accepted_draft_tokens = 0;
  std::optional<Error> error;   // the request failed while running
};

struct GenerationRequest {
  // Exactly one of: token ids as they are; a text (encoded plainly, with the model's <bos>); a
  // conversation through the model's chat template (generation prompt added).
  std::vector<int32_t> prompt_tokens;
  std::string prompt;
  std::vector<ChatMessage> messages;

  int64_t max_tokens = 256;
  std::optional<SamplingParams> sampling;  // empty: the model's generation_config defaults
  std::vector<std::string> stop;           // stop strings (need the tokenizer)
  bool ignore_eos = false;
  int64_t top_logprobs = 0;
  // Structured output, at most one: only what the JSON Schema (its text), the regular
  // expression, the GBNF grammar or "any JSON object" allows is generated (docs/constraints.md).
  std::string json_schema, regex, grammar;
  bool json_object = false;
  // Chat only, for the model's chat template: the tools it may call (a JSON array of OpenAI
  // {"type": "function", "function": {"name", "description", "parameters"}} objects, the
  // template's `tools`), and extra template variables (a JSON object, e.g. {"enable_thinking":
  // true}). Empty: none. kInvalidArgument when not JSON of that shape or without a template.
  std::string tools;
  std::string chat_template_kwargs;
  // Stream the text of special tokens too (<|tool_call>, <|channel>, ...), so that the model's
  // own tool-call and reasoning syntax can be parsed; end-of-sequence ids are never text.
  bool keep_special_tokens = false;
  std::function<void(const TokenEvent&)> on_token;
  std::function<void(const Completion&)> on_done;
};

struct ModelInfo {
  std::string path;
  std::string device;  // "cpu" | "cuda"
  std::string target;  // "cpu (avx512)", "cuda sm_90", ...
  std::string architecture;
  int64_t context = 0, chunk = 0, parallel = 0, vocab_size = 0;
  std::vector<int32_t> stop_token_ids;
  SamplingParams default_sampling;  // generation_config.json's (greedy unless do_sample)
  bool has_tokenizer = false, has_chat_template = false;
  int64_t weight_bytes = 0, kv_pool_bytes = 0;
};

struct ModelStats {
  int64_t waiting = 0, running = 0, finished = 0, cancelled = 0, preemptions = 0;
  int64_t prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0;
  int64_t draft_tokens = 0, accepted_draft_tokens = 0;  // speculative decoding
  // Model steps run; those that ran prompt tokens (a new request's prefill, alone or beside
  // decoding sequences); sequences over all steps (step_rows / steps: the mean batch).
  int64_t steps = 0, prompt_steps = 0, step_rows = 0;
  // Per draft position i (speculative decoding): rounds that drafted that far, and those whose
  // drafts were accepted up to it.
  std::vector<int64_t> drafted_by_position = {}, accepted_by_position = {};
  int64_t draft_cached_tokens = 0;  // prompt tokens a draft model took from its prefix cache
};

class Model {
 public:
  // `path`: a Hugging Face checkpoint directory or a .kiln file.
  static Result<std::unique_ptr<Model>> Load(const std::string& path, const ModelOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Queues a request; returns at once. kInvalidArgument / kOutOfRange for a request that can
  // never run.
  Result<RequestId> Submit(GenerationRequest request);
  // The checks Submit makes, without submitting: a batch of requests can be checked whole first.
  Status Validate(const GenerationRequest& request) const;
  // Ends a request as "cancelled" (its KV memory is freed at the next step); unknown ids are ignored.
  void Cancel(RequestId id);
  // Submit and wait for the completion (a running failure is returned as the error).
  Result<Completion> Generate(GenerationRequest request);

  // The prompt a request would run, as token ids.
  Result<std::vector<int32_t>> Tokenize(const std::string& text) const;
  Result<std::vector<int32_t>> ApplyChatTemplate(const std::vector<ChatMessage>& messages) const;
  Result<std::string> Detokenize(std::span<const int32_t> ids) const;

  ModelInfo info() const;
  ModelStats stats() const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
