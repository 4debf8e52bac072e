#!/usr/bin/env python3
"""Generate random-weight Gemma 4 MTP assistant (drafter) fixtures with Hugging Face transformers.

Usage:
    python3 scripts/make_mtp_fixtures.py --fixtures tests/fixtures

Needs torch + transformers >= 5.17 (Gemma4AssistantForCausalLM), safetensors and numpy. Runs on
the CPU in fp32 with eager attention; deterministic (fixed seeds).

For each target fixture (g31b: no KV sharing, k_eq_v; e2b: KV-shared layers and per-layer
inputs) it builds a tiny assistant whose attention geometry matches the target's caches, and
randomises every parameter the way scripts/make_fixtures.py does. The reference is the assistant
called directly (docs/speculative.md §3, "reference recipe without generate"), which avoids
transformers' first-round bug (#48703) and the stale KV it keeps after a rejection:

    run the target text model once over the fixture prompt with return_shared_kv_states=True;
    for each chosen t: e = target.embed(prompt[t]) (already scaled by sqrt(H_b)),
    h = last_hidden_state[t - 1] (final-normed), KV of each attention type sliced to [:t],
    position_ids = [[t]]; then K steps, each feeding the argmax token's embedding and the
    assistant's own last_hidden_state (the post_projection output) back.

Chosen t: below the sliding window and past it (the sliding layers read the last W target
positions), and the prompt's last token.

With --copy-drafter it writes only <fixtures>/<target>/mtp_copy/ (numpy alone; see
make_copy_drafter): an assistant that mostly drafts its input token again, for tests where drafts
must sometimes be accepted.

It writes <fixtures>/<target>/mtp/, and for e2b also mtp_centroid/ (the same with the E2B/E4B
centroid-masked head, use_ordered_embeddings: CENTROIDS centroids, the best CENTROID_TOP_K kept):
    config.json, model.safetensors    the assistant (fp32, save_pretrained)
    reference.json                     t values, K, draft tokens per round, sanity numbers
    draft_logits.npy                   float32 [rounds * K, V]: the assistant's logits, round-major
    draft_hidden.npy                   float32 [rounds * K, H_b]: its post_projection output
    target_hidden.npy                  float32 [P, H_b]: the target's final-normed hidden states
"""

import argparse
import json
import math
import os
import shutil
import sys
import traceback

import numpy as np

try:  # the copy drafter (--copy-drafter) needs numpy alone
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
except ImportError:
    torch = transformers = AutoModelForCausalLM = None

TARGETS = {"g31b": 2101, "e2b": 2102}
DRAFT_STEPS = 4
HIDDEN = 32
INTERMEDIATE = 64
HEADS = 4
QK_NORM_MEAN, QK_NORM_STD = 0.4, 0.1
NORM_MEAN, NORM_STD = 1.0, 0.3
LAYER_SCALAR_RANGE = (0.5, 1.5)
FFN_STD_MULT = 0.7
MIN_MARGIN = 1e-2
# The centroid-masked head of the e2b fixtures' drafters: 16 centroids of 32 tokens (V = 512),
# the best 4 kept (128 tokens), as E2B's 2048 of 128 with the best 32.
CENTROIDS, CENTROID_TOP_K = 16, 4


def assistant_classes():
    try:
        from transformers import Gemma4AssistantConfig, Gemma4AssistantForCausalLM
        return Gemma4AssistantConfig, Gemma4AssistantForCausalLM
    except ImportError:
        names = [n for n in dir(transformers) if "Assistant" in n]
        raise RuntimeError(f"transformers {transformers.__version__} has no Gemma4Assistant classes; found {names}")


def assistant_text_config(target):
    """The assistant's text config for a target, from the target's config.json (a dict): its
    attention geometry matches the target's caches (the full layer's as the target writes it)."""
    full = target["layer_types"].index("full_attention")
    text = dict(
        model_type="gemma4_text",
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=4,
        layer_types=["sliding_attention"] * 3 + ["full_attention"],
        num_attention_heads=HEADS,
        num_key_value_heads=target["num_key_value_heads"],
        head_dim=target["head_dim"],
        attention_k_eq_v=target.get("attention_k_eq_v", False),
        sliding_window=target["sliding_window"],
        vocab_size=target["vocab_size"],
        max_position_embeddings=target["max_position_embeddings"],
        rope_parameters=target["rope_parameters"],
        hidden_activation="gelu_pytorch_tanh",
        final_logit_softcapping=None,
        hidden_size_per_layer_input=0,
        vocab_size_per_layer_input=0,
        num_kv_shared_layers=4,
        enable_moe_block=False,
        use_double_wide_mlp=False,
        rms_norm_eps=target["rms_norm_eps"],
        tie_word_embeddings=True,
        bos_token_id=2, eos_token_id=1, pad_token_id=0,
    )
    per_layer = target.get("per_layer_config") or {}
    if str(full) in per_layer:
        text["per_layer_config"] = {"3": dict(per_layer[str(full)])}
    else:
        for key in ("global_head_dim", "num_global_key_value_heads"):
            if target.get(key) is not None:
                text[key] = target[key]
    return text


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("q_norm.weight"):
            p.normal_(QK_NORM_MEAN, QK_NORM_STD, generator=g)
        elif "norm" in name or "scale" in name:
            p.normal_(NORM_MEAN, NORM_STD, generator=g)
        elif "embed_tokens" in name:
            p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]), generator=g)
        elif p.dim() >= 2:
            mult = FFN_STD_MULT if ".mlp." in name else 1.0
            p.normal_(0.0, mult / math.sqrt(p.shape[-1]), generator=g)
        else:
            p.normal_(0.0, 0.1, generator=g)
    for name, b in model.named_buffers():
        if name.endswith("layer_scalar"):
            b.uniform_(*LAYER_SCALAR_RANGE, generator=g)


def build_assistant(target, seed, centroids=False):
    config_cls, model_cls = assistant_classes()
    head = dict(use_ordered_embeddings=True, num_centroids=CENTROIDS, centroid_intermediate_top_k=CENTROID_TOP_K) if centroids \
        else dict(use_ordered_embeddings=False)
    cfg = config_cls(text_config=assistant_text_config(target), backbone_hidden_size=target["hidden_size"],
                     tie_word_embeddings=True, **head)
    torch.manual_seed(seed)
    try:
        model = model_cls._from_config(cfg, attn_implementation="eager")
    except TypeError:
        cfg._attn_implementation = "eager"
        model = model_cls(cfg)
    model = model.float().eval()
    randomize(model, seed)
    if centroids:
        # A random token ordering (transformers' initial one may be the identity).
        orderings = [b for n, b in model.named_buffers() if n.endswith("token_ordering")]
        if len(orderings) != 1:
            raise RuntimeError(f"expected one token_ordering buffer, found {[n for n, _ in model.named_buffers()]}")
        g = torch.Generator().manual_seed(seed + 7)
        orderings[0].copy_(torch.randperm(orderings[0].numel(), generator=g).to(orderings[0].dtype))
    return model


def target_states(target, prompt):
    text_model = target.model
    out = text_model(input_ids=torch.tensor([prompt]), return_shared_kv_states=True, output_hidden_states=True,
                     use_cache=False)
    shared = getattr(out, "shared_kv_states", None)
    if shared is None:
        raise RuntimeError(f"target output has no shared_kv_states; fields: {list(out.keys())}")
    return out.last_hidden_state[0].float(), shared


def draft_round(target, assistant, prompt, hidden, shared, t):
    embed = target.get_input_embeddings()
    kv = {kind: (k[:, :, :t], v[:, :, :t]) for kind, (k, v) in shared.items()}
    e = embed(torch.tensor([[prompt[t]]])).float()
    h = hidden[t - 1].view(1, 1, -1)
    tokens, logits, states, margins = [], [], [], []
    for _ in range(DRAFT_STEPS):
        out = assistant(inputs_embeds=torch.cat([e, h], dim=-1), position_ids=torch.tensor([[t]]), shared_kv_states=kv)
        row = out.logits[0, -1].float()
        top = torch.topk(row, 2).values
        token = int(torch.argmax(row))
        tokens.append(token)
        logits.append(row)
        margins.append(float(top[0] - top[1]))
        h = out.last_hidden_state[:, -1:].float()
        states.append(h[0, 0])
        e = embed(torch.tensor([[token]])).float()
    return tokens, torch.stack(logits), torch.stack(states), margins


def make(fixtures, name, seed, out_name="mtp", centroids=False):
    print(f"== {name}/{out_name}", flush=True)
    base = os.path.join(fixtures, name)
    reference = json.load(open(os.path.join(base, "reference.json")))
    prompt = reference["prompt"]
    target = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager").eval()
    target_json = json.load(open(os.path.join(base, "config.json")))
    W = target_json["sliding_window"]
    rounds_t = [W - 2, W + 5, len(prompt) - 1]
    assert rounds_t[1] < len(prompt) - 1
    hidden, shared = target_states(target, prompt)
    print(f"  shared KV: { {k: tuple(v[0].shape) for k, v in shared.items()} }", flush=True)
    for attempt in range(8):
        assistant = build_assistant(target_json, seed + 100 * attempt, centroids)
        results = [draft_round(target, assistant, prompt, hidden, shared, t) for t in rounds_t]
        margin = min(min(r[3]) for r in results)
        print(f"  seed {seed + 100 * attempt}: min top1-top2 margin {margin:.3g}", flush=True)
        if margin >= MIN_MARGIN:
            break
    out = os.path.join(base, out_name)
    shutil.rmtree(out, ignore_errors=True)
    assistant.save_pretrained(out, safe_serialization=True)
    if centroids:
        # The token ordering is part of the checkpoint (the E2B/E4B drafters ship it as I64).
        from safetensors.torch import load_file, save_file
        path = os.path.join(out, "model.safetensors")
        stored = load_file(path)
        if not any(k.endswith("token_ordering") for k in stored):
            ordering = [b for n, b in assistant.named_buffers() if n.endswith("token_ordering")][0]
            stored["masked_embedding.token_ordering"] = ordering.to(torch.int64).contiguous()
            save_file(stored, path, metadata={"format": "pt"})
        print(f"  stored: {sorted(k for k in stored if 'masked' in k)}", flush=True)
    np.save(os.path.join(out, "draft_logits.npy"), torch.cat([r[1] for r in results]).numpy().astype(np.float32))
    np.save(os.path.join(out, "draft_hidden.npy"), torch.cat([r[2] for r in results]).numpy().astype(np.float32))
    np.save(os.path.join(out, "target_hidden.npy"), hidden.numpy().astype(np.float32))
    ref = dict(target=name, transformers_version=transformers.__version__, torch_version=torch.__version__,
               seed=seed + 100 * attempt, draft_steps=DRAFT_STEPS, rounds=rounds_t,
               draft_tokens=[r[0] for r in results], min_top1_top2_margin=margin,
               prompt_tokens_used=len(prompt),
               note="assistant called directly (docs/speculative.md section 3): e = target embedding of prompt[t], "
                    "h = target final-normed hidden state at t-1, target KV sliced to [:t], position t, "
                    "argmax tokens fed back with the assistant's post_projection output")
    json.dump(ref, open(os.path.join(out, "reference.json"), "w"), indent=1)
    # Reload check: the written checkpoint gives the same logits.
    _, model_cls = assistant_classes()
    again = model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    redo = draft_round(target, again, prompt, hidden, shared, rounds_t[0])
    diff = float((redo[1] - results[0][1]).abs().max())
    print(f"  reload max|d| = {diff:.3g}; drafts {ref['draft_tokens']}", flush=True)
    return diff == 0.0 and margin >= MIN_MARGIN


def read_safetensors(path):
    import struct
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        assert info["dtype"] == "F32", (name, info["dtype"])
        tensors[name] = np.frombuffer(data[8 + n + begin:8 + n + end], dtype=np.float32).reshape(info["shape"])
    return tensors


def write_safetensors(path, tensors):
    """F32 tensors, and I64 for integer arrays (a centroid head's token ordering)."""
    import struct
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        integer = np.issubdtype(np.asarray(value).dtype, np.integer)
        blob = np.ascontiguousarray(value, dtype=np.int64 if integer else np.float32).tobytes()
        header[name] = {"dtype": "I64" if integer else "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def make_copy_drafter(fixtures, name, seed=2201, centroids=0, top_k=0):
    """A numpy-made assistant for `name` that mostly drafts its input token again: its hidden size
    is the target's, pre_projection is [I | 0.3 R] (the target's own embedding, plus a little of the
    hidden state), its layers add small random terms, and its LM head is the target's embedding
    table. Targets repeat tokens often enough for it to be accepted sometimes, so speculative
    rounds with partial acceptance (and the hidden state of the accepted row) are exercised.

    With `centroids` it writes mtp_copy_centroid/ instead: the same drafter with the E2B/E4B
    centroid-masked head (use_ordered_embeddings; random centroids and a random token ordering),
    so that only the tokens of its `top_k` best centroids keep their logits."""
    base = os.path.join(fixtures, name)
    target = json.load(open(os.path.join(base, "config.json")))
    weights = read_safetensors(os.path.join(base, "model.safetensors"))
    embed = weights.get("model.embed_tokens.weight")
    if embed is None:
        embed = weights["model.language_model.embed_tokens.weight"]
    V, H = embed.shape
    rng = np.random.default_rng(seed)
    full = target["layer_types"].index("full_attention")
    full_head_dim = (target.get("per_layer_config") or {}).get(str(full), {}).get("head_dim") or target.get("global_head_dim") or target["head_dim"]
    heads, I = 4, 64
    text = dict(model_type="gemma4_text", hidden_size=H, intermediate_size=I, num_hidden_layers=4,
                layer_types=["sliding_attention"] * 3 + ["full_attention"], num_attention_heads=heads,
                num_key_value_heads=target["num_key_value_heads"], head_dim=target["head_dim"], global_head_dim=full_head_dim,
                attention_k_eq_v=target.get("attention_k_eq_v", False), sliding_window=target["sliding_window"], vocab_size=V,
                max_position_embeddings=target["max_position_embeddings"], rope_parameters=target["rope_parameters"],
                hidden_activation="gelu_pytorch_tanh", final_logit_softcapping=None, hidden_size_per_layer_input=0,
                vocab_size_per_layer_input=0, num_kv_shared_layers=4, rms_norm_eps=1e-6, tie_word_embeddings=True)
    config = dict(architectures=["Gemma4AssistantForCausalLM"], model_type="gemma4_assistant", backbone_hidden_size=H,
                  use_ordered_embeddings=False, tie_word_embeddings=True, dtype="float32", text_config=text)
    t = {"model.embed_tokens.weight": embed, "model.norm.weight": np.ones(H),
         "pre_projection.weight": np.concatenate([np.eye(H), 0.3 * rng.normal(0, 1 / math.sqrt(H), (H, H))], axis=1),
         "post_projection.weight": rng.normal(0, 1 / math.sqrt(H), (H, H))}
    for i in range(4):
        d = full_head_dim if i == 3 else target["head_dim"]
        p = f"model.layers.{i}."
        for n in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]:
            t[p + n + ".weight"] = rng.normal(1, 0.3, (H,))
        t[p + "layer_scalar"] = np.ones(1)
        t[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.7 / math.sqrt(H), (I, H))
        t[p + "mlp.up_proj.weight"] = rng.normal(0, 0.7 / math.sqrt(H), (I, H))
        t[p + "mlp.down_proj.weight"] = rng.normal(0, 0.05 / math.sqrt(I), (H, I))
        t[p + "self_attn.q_proj.weight"] = rng.normal(0, 1 / math.sqrt(H), (heads * d, H))
        t[p + "self_attn.o_proj.weight"] = rng.normal(0, 0.05 / math.sqrt(heads * d), (H, heads * d))
        t[p + "self_attn.q_norm.weight"] = rng.normal(0.4, 0.1, (d,))
    out = os.path.join(base, "mtp_copy")
    if centroids:
        extra = np.random.default_rng(seed + 1)
        config.update(use_ordered_embeddings=True, num_centroids=centroids, centroid_intermediate_top_k=top_k)
        t["masked_embedding.centroids.weight"] = extra.normal(0, 1 / math.sqrt(H), (centroids, H))
        t["masked_embedding.token_ordering"] = extra.permutation(V).astype(np.int64)
        out += "_centroid"
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
    write_safetensors(os.path.join(out, "model.safetensors"), t)
    print(f"== {name}: copy drafter in {out}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixtures", default="tests/fixtures")
    parser.add_argument("--only", default="")
    parser.add_argument("--copy-drafter", action="store_true", help="write only the numpy-made copy drafters")
    args = parser.parse_args()
    if args.copy_drafter:
        for name in TARGETS:
            if not args.only or name == args.only:
                make_copy_drafter(args.fixtures, name)
        if not args.only or args.only == "e2b":  # E2B's real drafter has the centroid head
            make_copy_drafter(args.fixtures, "e2b", centroids=CENTROIDS, top_k=CENTROID_TOP_K)
        return
    torch.set_grad_enabled(False)
    ok = True
    variants = [(name, seed, "mtp", False) for name, seed in TARGETS.items()] + [("e2b", TARGETS["e2b"] + 50, "mtp_centroid", True)]
    for name, seed, out_name, centroids in variants:
        if args.only and name != args.only:
            continue
        try:
            ok = make(args.fixtures, name, seed, out_name, centroids) and ok
        except Exception:
            traceback.print_exc()
            ok = False
    print("ALL OK" if ok else "FAILURES", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
