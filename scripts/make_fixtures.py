#!/usr/bin/env python3
"""Generate kiln's Gemma 4 reference fixtures with Hugging Face transformers.

Usage:
    python3 scripts/make_fixtures.py --out tests/fixtures

Needs torch + transformers (>= 5.17: Gemma4ForCausalLM, Gemma4UnifiedForCausalLM),
safetensors and numpy. Runs on the CPU in fp32 with eager attention; fully
deterministic (fixed seeds, dedicated torch.Generator per variant).

For each base variant (e2b, e4b, g12b, a26b, g31b) it builds a tiny random-weight model and
randomises EVERY parameter so that convention bugs show up, while keeping the model
well-conditioned (HF's own fp32 rounding must stay far below the 1e-4 test tolerance):

    q_norm / k_norm weights        ~ N(0.4, 0.1)   (not 1 and not 0: a (1+w) bug changes scores ~10x)
    other norm / scale parameters  ~ N(1, 0.3)     (incl. router.scale, router.per_expert_scale)
    embed_tokens                   ~ N(0, 1/H)     (std 1/sqrt(hidden): unit-RMS embeddings, logits ~ N(0, 1))
    embed_tokens_per_layer         ~ N(0, 1/ple)   (std 1/sqrt(hidden_size_per_layer_input))
    router.proj                    ~ N(0, 1)       (its input is already scaled by hidden^-0.5)
    MLP / expert matrices          std 0.7/sqrt(fan_in)
    all other matrices             std 1/sqrt(fan_in)
    layer_scalar buffers           ~ U(0.5, 1.5)

Acceptance, checked for every variant (the model seed and then the prompt seed are advanced until
all three hold):
    max |HF fp32 full forward - HF float64 forward|     <= 2e-5
    max |HF fp32 cache decode - HF fp32 full forward|   <= 2e-5
    min top-1/top-2 logit gap over the greedy steps     >= 1e-2
The float64 reference is model.double() with HF's RMSNorm and eager-attention softmax kept in
float64 (HF casts both to float32 even in a float64 model; only RoPE's cos/sin stay fp32-computed).

It writes into <out>/<variant>/:

    config.json, model.safetensors (fp32, save_pretrained), generation_config.json
    reference.json        prompt / decode / greedy token ids and sanity numbers
    prefill_logits.npy    float32 [P, V]: logits of every prompt position (one forward)
    decode_logits.npy     float32 [D, V]: row j = logits after feeding decode_tokens[j]
                          one at a time on top of the cached prompt
    bf16/config.json, bf16/model.safetensors   the same model cast to bfloat16
    bf16/prefill_logits.npy  float32 [P, V]: HF fp32 forward on the bf16-rounded weights

Extra checkpoint *forms* (same weights and same expected logits as a base variant):

    e4b_multimodal      Gemma4ForConditionalGeneration-style config + "model.language_model." names
    g31b_sharded        save_pretrained(max_shard_size=~1/4 of the checkpoint): index.json + 3-6 shards
    g12b_legacy_config  Hub-style config.json: global_head_dim / num_global_key_value_heads,
                        no per_layer_config

All checks (acceptance above, generate() vs manual argmax loop, reload of every written
checkpoint form through from_pretrained, directory sizes) are recorded; the script still writes
everything when a check fails, prints the failures and exits with status 1.
"""

import argparse
import contextlib
import copy
import json
import math
import os
import shutil
import sys
import traceback
import types

import numpy as np
import torch

import transformers
from transformers import Gemma4ForCausalLM, Gemma4TextConfig

try:
    from transformers import Gemma4UnifiedForCausalLM, Gemma4UnifiedTextConfig
except ImportError:  # pragma: no cover - older transformers
    Gemma4UnifiedForCausalLM = Gemma4UnifiedTextConfig = None

S, F = "sliding_attention", "full_attention"
VOCAB = 512
PROMPT_LEN = 24          # P; every variant's sliding_window is <= 8, so P > 2*W
DECODE_LEN = 8           # D
GREEDY_NEW = 10          # greedy_max_new_tokens
BOS = 2

# Random init (see the module docstring). Chosen so that HF's fp32 rounding noise in the logits
# stays around 1e-6 .. 1e-5 while every convention bug still moves the logits by O(0.1 .. 1).
QK_NORM_MEAN, QK_NORM_STD = 0.4, 0.1
NORM_MEAN, NORM_STD = 1.0, 0.3
LAYER_SCALAR_RANGE = (0.5, 1.5)
FFN_STD_MULT = 0.7          # MLP and expert matrices: std FFN_STD_MULT / sqrt(fan_in)
ROUTER_PROJ_STD = 1.0

# Acceptance, asserted for every variant.
TOL_FP32_VS_FP64 = 2e-5     # max |HF fp32 full forward - HF float64 forward|
TOL_CACHE_VS_FULL = 2e-5    # max |HF fp32 cache decode - HF fp32 full forward|
MIN_GREEDY_MARGIN = 1e-2    # smallest top-1/top-2 logit gap over the greedy steps
MODEL_ATTEMPTS = 8          # model seeds tried: spec seed + 100*k
PROMPT_ATTEMPTS = 40        # prompt seeds tried per model seed: seed + 500 + j
MAX_DIR_BYTES = 1_500_000   # every fixture dir (bf16/ included) must stay well under 2 MB

FAILURES = []


def check(ok, what, quiet=False):
    tag = "ok  " if ok else "FAIL"
    if not (ok and quiet):
        print(f"  [{tag}] {what}", flush=True)
    if not ok:
        FAILURES.append(what)
    return ok


# --------------------------------------------------------------------------------------
# Variant definitions
# --------------------------------------------------------------------------------------

COMMON = dict(
    vocab_size=VOCAB,
    head_dim=16,
    global_head_dim=32,
    final_logit_softcapping=30.0,   # class default is None; every released model uses 30
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)

# All variants: 4 query heads, head_dim 16 on sliding layers, 32 on full layers.
VARIANTS = {
    # E2B-style: PLE, KV sharing (4 sliding + 1 full layer shared), double-wide MLP in the
    # shared layers, full layers with their own V (no k_eq_v), MQA (1 KV head).
    "e2b": dict(
        cls="Gemma4ForCausalLM", seed=1001,
        cfg=dict(
            hidden_size=48, intermediate_size=16,
            num_hidden_layers=10, layer_types=[S, S, S, S, F] * 2,
            num_attention_heads=4, num_key_value_heads=1,
            sliding_window=6,
            hidden_size_per_layer_input=8, vocab_size_per_layer_input=VOCAB,
            num_kv_shared_layers=5, use_double_wide_mlp=True, attention_k_eq_v=False,
        ),
    ),
    # E4B-style: PLE, KV sharing (2 sliding + 1 full layer shared), GQA 4q/2kv.
    # (S*5,F) then (S,S,F): 9 layers with the last one full. H = 48, so sqrt(H) is not exact.
    "e4b": dict(
        cls="Gemma4ForCausalLM", seed=1002,
        cfg=dict(
            hidden_size=48, intermediate_size=24,
            num_hidden_layers=9, layer_types=[S] * 5 + [F] + [S, S, F],
            num_attention_heads=4, num_key_value_heads=2,
            sliding_window=7,
            hidden_size_per_layer_input=8, vocab_size_per_layer_input=VOCAB,
            num_kv_shared_layers=3, use_double_wide_mlp=False, attention_k_eq_v=False,
        ),
    ),
    # 12B-style (Gemma4Unified*): dense, k_eq_v on full layers, 2 sliding KV heads, 1 global KV head.
    "g12b": dict(
        cls="Gemma4UnifiedForCausalLM", seed=1003,
        cfg=dict(
            hidden_size=64, intermediate_size=24,
            num_hidden_layers=8, layer_types=[S, S, S, F] * 2,
            num_attention_heads=4, num_key_value_heads=2,
            num_global_key_value_heads=1, attention_k_eq_v=True,
            sliding_window=8,
            hidden_size_per_layer_input=0,   # only passed if the config class has the field
        ),
    ),
    # 26B-A4B-style: MoE block (8 experts, top-2) in parallel with the dense MLP, k_eq_v.
    "a26b": dict(
        cls="Gemma4ForCausalLM", seed=1004,
        cfg=dict(
            hidden_size=48, intermediate_size=24,
            num_hidden_layers=6, layer_types=[S] * 5 + [F],
            num_attention_heads=4, num_key_value_heads=2,
            num_global_key_value_heads=2, attention_k_eq_v=True,
            sliding_window=7,
            hidden_size_per_layer_input=0,
            enable_moe_block=True, num_experts=8, top_k_experts=2, moe_intermediate_size=8,
        ),
    ),
    # 31B-style: dense, k_eq_v, 2 sliding and 2 global KV heads.
    "g31b": dict(
        cls="Gemma4ForCausalLM", seed=1005,
        cfg=dict(
            hidden_size=48, intermediate_size=24,
            num_hidden_layers=10, layer_types=([S] * 4 + [F]) * 2,
            num_attention_heads=4, num_key_value_heads=2,
            num_global_key_value_heads=2, attention_k_eq_v=True,
            sliding_window=6,
            hidden_size_per_layer_input=0,
        ),
    ),
}

CLASSES = {
    "Gemma4ForCausalLM": (Gemma4ForCausalLM, Gemma4TextConfig),
    "Gemma4UnifiedForCausalLM": (Gemma4UnifiedForCausalLM, Gemma4UnifiedTextConfig),
}


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def config_fields(cfg_cls):
    fields = getattr(cfg_cls, "__dataclass_fields__", None)
    if fields:
        return set(fields)
    try:
        return set(cfg_cls().to_dict())
    except Exception:
        return set()


def build_model(spec, seed):
    model_cls, cfg_cls = CLASSES[spec["cls"]]
    if model_cls is None:
        raise RuntimeError(f"{spec['cls']} is not available in transformers {transformers.__version__}")
    kw = dict(COMMON)
    kw.update(spec["cfg"])
    kw["layer_types"] = list(kw["layer_types"])
    if "hidden_size_per_layer_input" in kw and kw["hidden_size_per_layer_input"] == 0:
        if "hidden_size_per_layer_input" not in config_fields(cfg_cls):
            kw.pop("hidden_size_per_layer_input")
    cfg = cfg_cls(**kw)
    assert cfg.layer_types == kw["layer_types"], (cfg.layer_types, kw["layer_types"])
    torch.manual_seed(seed)
    try:
        model = model_cls._from_config(cfg, attn_implementation="eager")
    except TypeError:
        cfg._attn_implementation = "eager"
        model = model_cls(cfg)
    model = model.float().eval()
    check(getattr(model.config, "_attn_implementation", None) == "eager",
          f"attn_implementation = {getattr(model.config, '_attn_implementation', None)!r}", quiet=True)
    randomize(model, seed)
    return model


def init_rule(name, p, cfg):
    """(kind, a, b) for parameter `name`: ("normal", mean, std)."""
    if name.endswith("q_norm.weight") or name.endswith("k_norm.weight"):
        return "normal", QK_NORM_MEAN, QK_NORM_STD
    if "norm" in name or "scale" in name:
        return "normal", NORM_MEAN, NORM_STD
    if "embed_tokens_per_layer" in name:
        return "normal", 0.0, 1.0 / math.sqrt(cfg.hidden_size_per_layer_input)
    if "embed_tokens" in name:
        return "normal", 0.0, 1.0 / math.sqrt(cfg.hidden_size)
    if "router.proj" in name:
        return "normal", 0.0, ROUTER_PROJ_STD
    if p.dim() >= 2:
        mult = FFN_STD_MULT if (".mlp." in name or ".experts." in name) else 1.0
        return "normal", 0.0, mult / math.sqrt(p.shape[-1])
    return "normal", 0.0, 0.1   # no such parameter in Gemma 4; kept as a safe fallback


@torch.no_grad()
def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    for name, p in model.named_parameters():
        _, mean, std = init_rule(name, p, cfg)
        p.normal_(mean, std, generator=g)
    n_scalar = 0
    for name, b in model.named_buffers():
        if name.endswith("layer_scalar"):
            b.uniform_(*LAYER_SCALAR_RANGE, generator=g)
            n_scalar += 1
    assert n_scalar == model.config.num_hidden_layers, n_scalar


def load_eager(cls, path):
    return cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()


def _f(t):
    """fp32 (or keep fp64 for the float64 diagnostic run)."""
    return t if t.dtype == torch.float64 else t.float()


@torch.no_grad()
def full_logits(model, ids):
    out = model(input_ids=torch.tensor([ids]), use_cache=False)
    return _f(out.logits[0])


@torch.no_grad()
def cached_decode(model, prompt, tokens):
    """Prompt in one pass with the cache, then one token per step. Returns (prefill, [D,V])."""
    out = model(input_ids=torch.tensor([prompt]), use_cache=True)
    pkv = out.past_key_values
    prefill = _f(out.logits[0])
    rows = []
    for t in tokens:
        out = model(input_ids=torch.tensor([[t]]), past_key_values=pkv, use_cache=True)
        pkv = out.past_key_values
        rows.append(_f(out.logits[0, -1]))
    return prefill, torch.stack(rows)


@torch.no_grad()
def manual_greedy(model, prompt, n):
    out = model(input_ids=torch.tensor([prompt]), use_cache=True)
    pkv = out.past_key_values
    toks, margins = [], []
    last = out.logits[0, -1].float()
    for _ in range(n):
        top2 = torch.topk(last, 2)
        margins.append(float(top2.values[0] - top2.values[1]))
        t = int(top2.indices[0])
        toks.append(t)
        out = model(input_ids=torch.tensor([[t]]), past_key_values=pkv, use_cache=True)
        pkv = out.past_key_values
        last = out.logits[0, -1].float()
    return toks, margins


def inspect_tensors(name, path, cfg):
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        keys = list(f.keys())
        dtypes = {str(f.get_tensor(k).dtype) for k in keys}
    print(f"  {len(keys)} tensors, dtypes {sorted(dtypes)}", flush=True)
    check("lm_head.weight" not in keys, f"{name}: no lm_head.weight (tied)")
    L = cfg.num_hidden_layers
    shared = getattr(cfg, "num_kv_shared_layers", 0) or 0
    keqv = getattr(cfg, "attention_k_eq_v", False)
    bad = []
    for i, t in enumerate(cfg.layer_types):
        has_k = f"model.layers.{i}.self_attn.k_proj.weight" in keys
        has_v = f"model.layers.{i}.self_attn.v_proj.weight" in keys
        want_k = i < L - shared
        want_v = want_k and not (keqv and t == F)
        if has_k != want_k or has_v != want_v:
            bad.append((i, t, has_k, has_v))
    check(not bad, f"{name}: k_proj/v_proj presence matches sharing / k_eq_v {bad}")


def save_npy(path, t):
    a = np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))
    np.save(path, a)


def maxabs(a, b):
    return float((a - b).abs().max())


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def full_config_dict(cfg):
    return json.loads(cfg.to_json_string(use_diff=False))


def dir_bytes(d):
    tot = 0
    for root, _, files in os.walk(d):
        for fn in files:
            tot += os.path.getsize(os.path.join(root, fn))
    return tot


# --------------------------------------------------------------------------------------
# float64 reference and acceptance
# --------------------------------------------------------------------------------------

FP64_REFERENCE = ("model.double() with HF's RMSNorm and eager-attention softmax kept in float64 "
                  "(HF casts both to float32 even in a float64 model); RoPE cos/sin are computed in "
                  "fp32 as HF does for every dtype")


def _rms_forward_fp64(self, hidden_states):
    """Gemma4RMSNorm.forward without its float32 round trip (float64 inputs only)."""
    if hidden_states.dtype != torch.float64:
        return type(self).forward(self, hidden_states)
    out = self._norm(hidden_states)
    if getattr(self, "with_scale", "weight" in self._parameters):
        out = out * self.weight
    return out


@contextlib.contextmanager
def float64_internals(model):
    """Keep HF's RMSNorm and the eager softmax in float64 inside a float64 model."""
    patched = []
    for m in model.modules():
        if type(m).__name__.endswith("RMSNorm") and callable(getattr(m, "_norm", None)):
            m.forward = types.MethodType(_rms_forward_fp64, m)
            patched.append(m)
    nnf = torch.nn.functional
    orig_softmax = nnf.softmax

    def softmax64(input, dim=None, _stacklevel=3, dtype=None):
        if dtype is not None and input.dtype == torch.float64:
            dtype = None
        return orig_softmax(input, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

    nnf.softmax = softmax64
    try:
        yield len(patched)
    finally:
        nnf.softmax = orig_softmax
        for m in patched:
            del m.forward


def float64_copy(model):
    """(model.double(), note). If the MoE experts kernel has no float64 path, switch the copy to
    HF's eager experts loop (same math)."""
    m64 = copy.deepcopy(model).double().eval()
    try:
        full_logits(m64, [BOS, 3, 4])
        return m64, None
    except Exception as e:
        note = (f"float64 forward with experts implementation "
                f"{getattr(m64.config, '_experts_implementation', None)!r} failed "
                f"({type(e).__name__}: {str(e)[:200]}); the float64 copy uses 'eager' experts")
    for mod in m64.modules():
        c = getattr(mod, "config", None)
        if c is not None:
            try:
                c._experts_implementation = "eager"
            except Exception:
                pass
    full_logits(m64, [BOS, 3, 4])   # raises if float64 still does not run
    return m64, note


def numerics(model, prompt, decode_tokens):
    P = len(prompt)
    prefill = full_logits(model, prompt)
    prefill_c, decode = cached_decode(model, prompt, decode_tokens)
    full_all = full_logits(model, prompt + decode_tokens)
    r = dict(prefill=prefill, decode=decode,
             cache_vs_full=maxabs(decode, full_all[P:]),
             cache_prefill_vs_full=maxabs(prefill_c, prefill),
             fp32_vs_fp64=None, decode_vs_fp64=None, cache_vs_full64=None,
             hf_double_vs_fp64=None, fp64_reference=None, fp64_note=None, fp64_patched_norms=None)
    try:
        m64, note = float64_copy(model)
        hf_p = full_logits(m64, prompt)
        hf_f = full_logits(m64, prompt + decode_tokens)
        with float64_internals(m64) as n_norms:
            p64 = full_logits(m64, prompt)
            f64 = full_logits(m64, prompt + decode_tokens)
            _, d64 = cached_decode(m64, prompt, decode_tokens)
        hf_double_vs_fp64 = max(maxabs(hf_p, p64), maxabs(hf_f, f64))
        ref_desc = FP64_REFERENCE
        if not hf_double_vs_fp64 <= 1e-4:
            # the float64 patches changed more than rounding: use HF's plain model.double()
            note = ((note + "; ") if note else "") + (
                f"float64 RMSNorm/softmax patch moved the logits by {hf_double_vs_fp64:.3g}: "
                "reference is HF's plain model.double()")
            ref_desc = "HF's plain model.double() (RMSNorm, softmax and RoPE computed in fp32 inside)"
            p64, f64 = hf_p, hf_f
            _, d64 = cached_decode(m64, prompt, decode_tokens)
        r.update(fp32_vs_fp64=max(maxabs(prefill.double(), p64), maxabs(full_all.double(), f64)),
                 decode_vs_fp64=maxabs(decode.double(), f64[P:]),
                 cache_vs_full64=maxabs(d64, f64[P:]),
                 hf_double_vs_fp64=hf_double_vs_fp64, fp64_reference=ref_desc, fp64_note=note,
                 fp64_patched_norms=n_norms)
        del m64
    except Exception as e:
        traceback.print_exc()
        r["fp64_note"] = f"float64 forward unavailable: {type(e).__name__}: {str(e)[:300]}"
    return r


def token_ids(prompt_seed, V):
    g = torch.Generator().manual_seed(prompt_seed)
    prompt = [BOS] + torch.randint(3, V, (PROMPT_LEN - 1,), generator=g).tolist()
    decode_tokens = torch.randint(3, V, (DECODE_LEN,), generator=g).tolist()
    return prompt, decode_tokens


def _fmt(x):
    return "n/a" if x is None else f"{x:.3g}"


def select_model(name, spec):
    """Advance the model seed (outer) and the prompt seed (inner) until the acceptance holds."""
    moe = bool(spec["cfg"].get("enable_moe_block"))
    best, best_bad = None, None
    for attempt in range(MODEL_ATTEMPTS):
        seed = spec["seed"] + 100 * attempt
        model = build_model(spec, seed)
        V = model.config.vocab_size
        cand = None
        for j in range(PROMPT_ATTEMPTS):
            prompt_seed = seed + 500 + j
            prompt, decode_tokens = token_ids(prompt_seed, V)
            toks, margins = manual_greedy(model, prompt, GREEDY_NEW)
            if cand is None or min(margins) > min(cand["margins"]):
                cand = dict(prompt_seed=prompt_seed, prompt=prompt, decode_tokens=decode_tokens,
                            greedy=toks, margins=margins, prompt_attempts=j + 1)
            if min(margins) >= MIN_GREEDY_MARGIN:
                break
        num = numerics(model, cand["prompt"], cand["decode_tokens"])
        margin = min(cand["margins"])
        ok64 = (num["fp32_vs_fp64"] <= TOL_FP32_VS_FP64) if num["fp32_vs_fp64"] is not None else moe
        ok = bool(ok64 and num["cache_vs_full"] <= TOL_CACHE_VS_FULL and margin >= MIN_GREEDY_MARGIN)
        print(f"  seed {seed}, prompt seed {cand['prompt_seed']}: fp32 vs fp64 {_fmt(num['fp32_vs_fp64'])}, "
              f"cache decode vs full {num['cache_vs_full']:.3g}, greedy margin {margin:.3g} -> "
              f"{'accepted' if ok else 'rejected'}", flush=True)
        sel = dict(cand, model=model, seed=seed, num=num, model_attempts=attempt + 1, accepted=ok)
        if ok:
            return sel
        bad = max(num["cache_vs_full"] / TOL_CACHE_VS_FULL,
                  num["fp32_vs_fp64"] / TOL_FP32_VS_FP64 if num["fp32_vs_fp64"] is not None else (0.0 if moe else math.inf),
                  MIN_GREEDY_MARGIN / max(margin, 1e-30))
        if best is None or bad < best_bad:
            best, best_bad = sel, bad
    return best


# --------------------------------------------------------------------------------------
# Base variants
# --------------------------------------------------------------------------------------

def make_variant(name, spec, out_root, keep):
    print(f"== {name}", flush=True)
    d = os.path.join(out_root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    sel = select_model(name, spec)
    model = sel["model"]
    cfg = model.config
    V = cfg.vocab_size
    W = cfg.sliding_window
    assert PROMPT_LEN > 2 * W, (PROMPT_LEN, W)
    moe = bool(spec["cfg"].get("enable_moe_block"))
    prompt, decode_tokens = sel["prompt"], sel["decode_tokens"]
    man_toks, margins = sel["greedy"], sel["margins"]
    num = sel["num"]
    prefill, decode = num["prefill"], num["decode"]

    # acceptance
    check(num["cache_vs_full"] <= TOL_CACHE_VS_FULL,
          f"{name}: HF cache decode vs full forward (fp32) max|d| = {num['cache_vs_full']:.3g} <= {TOL_CACHE_VS_FULL:g}")
    if num["fp32_vs_fp64"] is None:
        check(moe, f"{name}: float64 reference unavailable ({num['fp64_note']})"
                   + ("; MoE: only cache decode vs full forward is compared" if moe else ""))
    else:
        check(num["fp32_vs_fp64"] <= TOL_FP32_VS_FP64,
              f"{name}: HF fp32 vs float64 full forward max|d| = {num['fp32_vs_fp64']:.3g} <= {TOL_FP32_VS_FP64:g}")
    check(min(margins) >= MIN_GREEDY_MARGIN,
          f"{name}: greedy min top1-top2 margin = {min(margins):.3g} >= {MIN_GREEDY_MARGIN:g}")
    print(f"  chosen: seed {sel['seed']} (model attempt {sel['model_attempts']}), prompt seed "
          f"{sel['prompt_seed']} (prompt attempt {sel['prompt_attempts']})", flush=True)
    print(f"  fp64: decode vs fp64 full {_fmt(num['decode_vs_fp64'])}, fp64 cache decode vs full "
          f"{_fmt(num['cache_vs_full64'])}, HF plain double() vs float64 {_fmt(num['hf_double_vs_fp64'])}, "
          f"RMSNorms patched {num['fp64_patched_norms']}", flush=True)
    if num["fp64_note"]:
        print(f"  note: {num['fp64_note']}", flush=True)

    # fp32 checkpoint
    model.save_pretrained(d)
    check(os.path.exists(os.path.join(d, "model.safetensors")), f"{name}: model.safetensors written")
    inspect_tensors(name, os.path.join(d, "model.safetensors"), cfg)
    save_npy(os.path.join(d, "prefill_logits.npy"), prefill)
    save_npy(os.path.join(d, "decode_logits.npy"), decode)
    print(f"  cached prefill vs full forward max|d| = {num['cache_prefill_vs_full']:.3g}", flush=True)

    # greedy: generate() vs manual argmax loop (EOS disabled so that exactly N tokens come out)
    saved_eos = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = None
    try:
        with torch.no_grad():
            gen = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=GREEDY_NEW,
                                 pad_token_id=0)
        gen_toks = gen[0, PROMPT_LEN:].tolist()
    except Exception as e:
        traceback.print_exc()
        gen_toks = f"generate() raised {e!r}"
    model.generation_config.eos_token_id = saved_eos
    check(gen_toks == man_toks, f"{name}: generate() == manual argmax loop ({gen_toks} vs {man_toks})")

    # reload check of the fp32 checkpoint
    try:
        m2 = load_eager(type(model), d)
        r = maxabs(full_logits(m2, prompt), prefill)
        check(r <= 1e-6, f"{name}: from_pretrained(fp32) reproduces prefill logits (max|d| = {r:.3g})")
        del m2
    except Exception as e:
        traceback.print_exc()
        check(False, f"{name}: from_pretrained(fp32) failed: {e!r}")

    # bf16 copy + fp32 oracle on the bf16-rounded weights
    bd = os.path.join(d, "bf16")
    os.makedirs(bd)
    mb = copy.deepcopy(model).to(torch.bfloat16)
    mb.save_pretrained(bd)
    del mb
    mr = copy.deepcopy(model)
    with torch.no_grad():
        for k, t in mr.state_dict().items():
            if t.is_floating_point():
                t.copy_(t.to(torch.bfloat16).to(torch.float32))
    bf16_logits = full_logits(mr, prompt)
    del mr
    save_npy(os.path.join(bd, "prefill_logits.npy"), bf16_logits)
    bf16_diff = maxabs(bf16_logits, prefill)
    print(f"  bf16-rounded vs fp32 weights: max|d logit| = {bf16_diff:.4g}", flush=True)
    try:
        m3 = load_eager(type(model), bd)
        r = maxabs(full_logits(m3, prompt), bf16_logits)
        check(r <= 1e-6, f"{name}: from_pretrained(bf16 dir, dtype=fp32) == rounded-weight oracle (max|d| = {r:.3g})")
        del m3
    except Exception as e:
        traceback.print_exc()
        check(False, f"{name}: from_pretrained(bf16) failed: {e!r}")
    if os.path.exists(os.path.join(bd, "generation_config.json")):
        os.remove(os.path.join(bd, "generation_config.json"))

    ref = {
        "variant": name,
        "hf_class": type(model).__name__,
        "model_type": cfg.model_type,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "dtype": "float32",
        "attn_implementation": "eager",
        "experts_implementation": getattr(cfg, "_experts_implementation", None) if moe else None,
        "seed": sel["seed"],
        "prompt_seed": sel["prompt_seed"],
        "model_seed_attempts": sel["model_attempts"],
        "prompt_seed_attempts": sel["prompt_attempts"],
        "init": {
            "q_norm_k_norm": f"N({QK_NORM_MEAN}, {QK_NORM_STD})",
            "other_norms_and_scales": f"N({NORM_MEAN}, {NORM_STD})",
            "embed_tokens": "N(0, 1/hidden_size)",
            "embed_tokens_per_layer": "N(0, 1/hidden_size_per_layer_input)",
            "router_proj": f"N(0, {ROUTER_PROJ_STD}^2)",
            "mlp_and_expert_matrices": f"std {FFN_STD_MULT}/sqrt(fan_in)",
            "other_matrices": "std 1/sqrt(fan_in)",
            "layer_scalar": f"U{LAYER_SCALAR_RANGE}",
        },
        "prompt": prompt,
        "decode_tokens": decode_tokens,
        "greedy_prompt": prompt,
        "greedy_tokens": man_toks,
        "greedy_max_new_tokens": GREEDY_NEW,
        "greedy_eos_disabled": True,
        "greedy_min_top1_top2_margin": min(margins),
        "greedy_top1_top2_margins": margins,
        "acceptance": {
            "fp32_vs_fp64_max_abs_at_most": TOL_FP32_VS_FP64,
            "cache_decode_vs_full_max_abs_at_most": TOL_CACHE_VS_FULL,
            "greedy_min_margin_at_least": MIN_GREEDY_MARGIN,
            "fp64_compared": num["fp32_vs_fp64"] is not None,
            "passed": sel["accepted"],
        },
        "fp32_vs_fp64_max_abs_logit_diff": num["fp32_vs_fp64"],
        "hf_cache_decode_vs_full_max_abs": num["cache_vs_full"],
        "hf_cache_prefill_vs_full_max_abs": num["cache_prefill_vs_full"],
        "hf_cache_decode_vs_fp64_full_max_abs": num["decode_vs_fp64"],
        "hf_cache_decode_vs_full_max_abs_fp64": num["cache_vs_full64"],
        "hf_plain_double_vs_fp64_max_abs": num["hf_double_vs_fp64"],
        "fp64_reference": num["fp64_reference"],
        "fp64_note": num["fp64_note"],
        "bf16_vs_fp32_max_abs_logit_diff": bf16_diff,
        "prefill_logits_shape": list(prefill.shape),
        "decode_logits_shape": list(decode.shape),
        "prefill_logits_max_abs": float(prefill.abs().max()),
        "prefill_logits_std": float(prefill.std()),
        "decode_logits_max_abs": float(decode.abs().max()),
        "summary": {
            "num_hidden_layers": spec["cfg"]["num_hidden_layers"],
            "layer_types": list(cfg.layer_types),
            "hidden_size": spec["cfg"]["hidden_size"],
            "intermediate_size": spec["cfg"]["intermediate_size"],
            "num_attention_heads": spec["cfg"]["num_attention_heads"],
            "num_key_value_heads": spec["cfg"]["num_key_value_heads"],
            "head_dim": spec["cfg"].get("head_dim", COMMON["head_dim"]),
            "global_head_dim": spec["cfg"].get("global_head_dim", COMMON["global_head_dim"]),
            "num_global_key_value_heads": spec["cfg"].get("num_global_key_value_heads"),
            "attention_k_eq_v": spec["cfg"].get("attention_k_eq_v", False),
            "sliding_window": W,
            "hidden_size_per_layer_input": spec["cfg"].get("hidden_size_per_layer_input", 0),
            "num_kv_shared_layers": spec["cfg"].get("num_kv_shared_layers", 0),
            "use_double_wide_mlp": spec["cfg"].get("use_double_wide_mlp", False),
            "enable_moe_block": spec["cfg"].get("enable_moe_block", False),
            "num_experts": spec["cfg"].get("num_experts"),
            "top_k_experts": spec["cfg"].get("top_k_experts"),
            "moe_intermediate_size": spec["cfg"].get("moe_intermediate_size"),
            "final_logit_softcapping": COMMON["final_logit_softcapping"],
            "vocab_size": VOCAB,
        },
    }
    write_json(os.path.join(d, "reference.json"), ref)
    print(f"  greedy {man_toks} (min top1-top2 margin {min(margins):.3g})", flush=True)
    print(f"  prompt {prompt}", flush=True)
    keep[name] = dict(model=model, prompt=prompt, prefill=prefill, dir=d, ref=ref)


# --------------------------------------------------------------------------------------
# Checkpoint forms
# --------------------------------------------------------------------------------------

def copy_reference(base, form_dir, form_name, hf_class, extra):
    for fn in ("prefill_logits.npy", "decode_logits.npy"):
        shutil.copyfile(os.path.join(base["dir"], fn), os.path.join(form_dir, fn))
    ref = dict(base["ref"])
    ref["variant"] = form_name
    ref["base_variant"] = base["ref"]["variant"]
    ref["hf_class"] = hf_class
    ref.update(extra)
    write_json(os.path.join(form_dir, "reference.json"), ref)


def make_e4b_multimodal(out_root, keep):
    from safetensors.torch import load_file, save_file
    name = "e4b_multimodal"
    print(f"== {name}", flush=True)
    base = keep["e4b"]
    d = os.path.join(out_root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

    text = full_config_dict(base["model"].config)
    text.pop("architectures", None)
    text.pop("transformers_version", None)
    assert text["model_type"] == "gemma4_text"
    mm = None
    try:
        from transformers import Gemma4Config
        mm = full_config_dict(Gemma4Config(text_config=copy.deepcopy(text)))
    except Exception as e:
        print(f"  Gemma4Config(...) failed ({e!r}); writing the wrapper config by hand", flush=True)
    if mm is None:
        mm = {
            "audio_config": None, "vision_config": None,
            "boi_token_id": 255999, "eoi_token_id": 258882, "image_token_id": 258880,
            "video_token_id": 258884, "boa_token_id": 256000, "eoa_token_index": 258883,
            "audio_token_id": 258881, "initializer_range": 0.02, "tie_word_embeddings": True,
        }
    mm["architectures"] = ["Gemma4ForConditionalGeneration"]
    mm["model_type"] = "gemma4"
    mm["text_config"] = text           # exactly the e4b text config
    mm["dtype"] = "float32"
    mm["transformers_version"] = transformers.__version__
    write_json(os.path.join(d, "config.json"), mm)

    sd = load_file(os.path.join(base["dir"], "model.safetensors"))
    new = {}
    for k, v in sd.items():
        assert k.startswith("model."), k
        new["model.language_model." + k[len("model."):]] = v.contiguous()
    save_file(new, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    print(f"  {len(new)} tensors renamed model.* -> model.language_model.*", flush=True)

    extra = {}
    try:
        from transformers import Gemma4ForConditionalGeneration
        m = load_eager(Gemma4ForConditionalGeneration, d)
        r = maxabs(full_logits(m, base["prompt"]), base["prefill"])
        extra["hf_reload_max_abs"] = r
        check(r < 1e-5, f"{name}: Gemma4ForConditionalGeneration.from_pretrained reproduces e4b logits (max|d| = {r:.3g})")
        del m
    except Exception as e:
        traceback.print_exc()
        extra["hf_reload_error"] = repr(e)
        check(False, f"{name}: Gemma4ForConditionalGeneration reload failed: {e!r}")
    copy_reference(base, d, name, "Gemma4ForConditionalGeneration", extra)


def make_g31b_sharded(out_root, keep):
    name = "g31b_sharded"
    print(f"== {name}", flush=True)
    base = keep["g31b"]
    d = os.path.join(out_root, name)
    total = os.path.getsize(os.path.join(base["dir"], "model.safetensors"))
    shards, max_shard = [], None
    # aim at about 4 shards; accept 3..6 (huggingface_hub packs tensors greedily in file order)
    for parts in (4, 5, 3, 6, 3.5, 4.5):
        max_shard = f"{max(1, int(total * 1.05 / parts / 1000))}KB"
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        base["model"].save_pretrained(d, max_shard_size=max_shard)
        shards = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
        print(f"  max_shard_size={max_shard}: {len(shards)} shards", flush=True)
        if 3 <= len(shards) <= 6:
            break
    idx = os.path.join(d, "model.safetensors.index.json")
    check(os.path.exists(idx) and 3 <= len(shards) <= 6,
          f"{name}: index.json + {len(shards)} shards (max_shard_size={max_shard}, checkpoint {total} bytes)")
    extra = {"num_shards": len(shards), "max_shard_size": max_shard}
    try:
        m = load_eager(Gemma4ForCausalLM, d)
        r = maxabs(full_logits(m, base["prompt"]), base["prefill"])
        extra["hf_reload_max_abs"] = r
        check(r <= 1e-6, f"{name}: sharded reload reproduces g31b logits (max|d| = {r:.3g})")
        del m
    except Exception as e:
        traceback.print_exc()
        extra["hf_reload_error"] = repr(e)
        check(False, f"{name}: sharded reload failed: {e!r}")
    copy_reference(base, d, name, "Gemma4ForCausalLM", extra)


def make_g12b_legacy(out_root, keep):
    name = "g12b_legacy_config"
    print(f"== {name}", flush=True)
    base = keep["g12b"]
    d = os.path.join(out_root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    shutil.copyfile(os.path.join(base["dir"], "model.safetensors"), os.path.join(d, "model.safetensors"))
    cfg = base["model"].config
    gh = VARIANTS["g12b"]["cfg"].get("global_head_dim", COMMON["global_head_dim"])
    gkv = VARIANTS["g12b"]["cfg"]["num_global_key_value_heads"]

    def legacy_dict(with_bc_keys):
        c = full_config_dict(cfg)
        c.pop("per_layer_config", None)
        c["architectures"] = [type(base["model"]).__name__]
        c["global_head_dim"] = gh
        c["num_global_key_value_heads"] = gkv
        if with_bc_keys:  # the released 12B config.json carries these backward-compat keys
            c.setdefault("hidden_size_per_layer_input", 0)
            c.setdefault("enable_moe_block", False)
        return c

    extra = {}
    last_err = None
    for with_bc in (True, False):
        write_json(os.path.join(d, "config.json"), legacy_dict(with_bc))
        try:
            m = load_eager(type(base["model"]), d)
            plc = getattr(m.config, "per_layer_config", None)
            print(f"  reloaded per_layer_config: {plc!r}"[:400], flush=True)
            r = maxabs(full_logits(m, base["prompt"]), base["prefill"])
            extra["hf_reload_max_abs"] = r
            extra["legacy_bc_keys"] = with_bc
            check(r <= 1e-6, f"{name}: legacy config reload reproduces g12b logits (bc keys={with_bc}, max|d| = {r:.3g})")
            del m
            last_err = None
            break
        except Exception as e:
            traceback.print_exc()
            last_err = e
    if last_err is not None:
        extra["hf_reload_error"] = repr(last_err)
        check(False, f"{name}: legacy config reload failed: {last_err!r}")
    c = read_json(os.path.join(d, "config.json"))
    check("per_layer_config" not in c and "global_head_dim" in c and "num_global_key_value_heads" in c,
          f"{name}: config.json has global_head_dim/num_global_key_value_heads and no per_layer_config")
    copy_reference(base, d, name, type(base["model"]).__name__, extra)


# --------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--only", nargs="*", help="subset of base variants (forms need their base)")
    args = ap.parse_args()

    torch.set_num_threads(min(8, os.cpu_count() or 1))
    print(f"transformers {transformers.__version__}  torch {torch.__version__}  numpy {np.__version__}", flush=True)
    os.makedirs(args.out, exist_ok=True)

    keep = {}
    names = args.only or list(VARIANTS)
    for name in names:
        try:
            make_variant(name, VARIANTS[name], args.out, keep)
        except Exception as e:
            traceback.print_exc()
            check(False, f"{name}: generation crashed: {e!r}")

    forms = [("e4b", make_e4b_multimodal), ("g31b", make_g31b_sharded), ("g12b", make_g12b_legacy)]
    for base, fn in forms:
        if base in keep:
            try:
                fn(args.out, keep)
            except Exception as e:
                traceback.print_exc()
                check(False, f"{fn.__name__}: crashed: {e!r}")

    print("== sizes", flush=True)
    for name in sorted(os.listdir(args.out)):
        p = os.path.join(args.out, name)
        if os.path.isdir(p):
            n = dir_bytes(p)
            check(n <= MAX_DIR_BYTES, f"{name:20s} {n / 1e6:6.3f} MB (<= {MAX_DIR_BYTES / 1e6:g} MB)")

    print("== summary", flush=True)
    for name in names:
        if name in keep:
            r = keep[name]["ref"]
            print(f"  {name:5s} fp32 vs fp64 {_fmt(r['fp32_vs_fp64_max_abs_logit_diff'])}  cache decode vs full "
                  f"{_fmt(r['hf_cache_decode_vs_full_max_abs'])}  greedy margin {r['greedy_min_top1_top2_margin']:.3g}  "
                  f"bf16 vs fp32 {r['bf16_vs_fp32_max_abs_logit_diff']:.3g}  max|logit| {r['prefill_logits_max_abs']:.2f}  "
                  f"seed {r['seed']}/{r['prompt_seed']}", flush=True)

    if FAILURES:
        print(f"\n{len(FAILURES)} CHECK(S) FAILED:", flush=True)
        for f in FAILURES:
            print("  - " + f, flush=True)
        sys.exit(1)
    print("\nall checks passed", flush=True)


if __name__ == "__main__":
    main()
