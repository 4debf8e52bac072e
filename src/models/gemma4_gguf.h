// Gemma 4 from a GGUF file written by llama.cpp's converter (convert_hf_to_gguf.py, class
// Gemma4Model; docs/gguf.md): the config.json the file's metadata implies, and its tensors under
// the Hugging Face names the graph builder looks up.
//
//   TRY_ASSIGN(GgufModel gguf, GgufModel::Open("gemma-4-31b-f16.gguf"));
//   TRY_ASSIGN(ImportedModel imported, ImportGemma4Gguf(gguf));
//   TRY_ASSIGN(auto architecture, ParseArchitecture(imported.config));
//
// Only the inverse of what the converter did is done here; nothing is copied or converted:
//   - ggml's {ne0 = in, ne1 = out} is the bytes of HF's [out, in]: shapes are reversed;
//   - norms are stored raw (no +1 as in Gemma 3), so they map as they are;
//   - token_embd may have fewer rows than the HF vocab (truncated to the tokenizer): vocab_size
//     is its row count, which must equal the tokenizer's token count when the file has one;
//   - no output.weight: tied embeddings; output.weight present: an untied lm_head;
//   - k_eq_v is not a key: it is the absence of attn_v on the full layers that own their KV;
//   - rope_freqs (generated: 1.0 for rotated frequencies, 1e30 for the rest) is not a weight:
//     it gives the full layers' partial rotary factor, and any other content is refused;
//   - experts are fused 3-D (ffn_gate_up_exps {H, 2M, E} = HF [E, 2M, H]); split
//     ffn_gate_exps / ffn_up_exps are refused (their HF form interleaves the two per expert).
// The synthesized config uses transformers 5.17's per_layer_config for the full layers' head
// dim and every layer's KV head count, and a per-layer intermediate_size list when the file has
// one (double-wide MLPs arrive already doubled), so ParseGemma4Config reads it unchanged and
// artifacts embed it like any config.json.
//
// A GGUF without tensors (llama.cpp's vocab-only files) imports as a bare config: its geometry
// comes from the metadata alone, with k_eq_v off (nothing says otherwise without tensors).
//
// Errors name the key or tensor: kNotFound for a missing required key (each listed in
// docs/gguf.md) or tensor; kMalformed for a key of the wrong type, a per-layer array of the
// wrong length, inconsistent k/v lengths; kUnsupported for what kiln does not implement
// (partial rotary on sliding layers, RoPE frequency factors, split experts, tensors of other
// architectures such as per-tensor .scale factors).
#pragma once

#include "io/gguf_model.h"
#include "models/model_family.h"

namespace kiln {

Result<ImportedModel> ImportGemma4Gguf(const GgufModel& model);

// A Gemma 4 MTP drafter from llama.cpp's converter (general.architecture gemma4-assistant,
// Gemma4AssistantModel): the assistant's config.json (gemma4_assistant, backbone_hidden_size
// from embedding_length_out) and its tensors under the checkpoint's names ("model.layers.0...",
// "pre_projection.weight" from nextn.pre_projection). The E2B/E4B centroid head is taken when the
// file carries masked_embd_centroids.weight and masked_embd_ordering (i32), as community
// conversions do (top_k from gemma4-assistant.masked_embedding.top_k, else the released 32);
// llama.cpp's converter drops them, and without them the head is dense, as in llama.cpp.
Result<ImportedModel> ImportGemma4AssistantGguf(const GgufModel& model);

}  // namespace kiln
