#!/usr/bin/env python3
"""Train the bundled model's MTP drafter: a Gemma 4 assistant (gemma4_assistant checkpoint) for
models/brown-gemma4, distilled from the model's own outputs on the Brown corpus.

Needs torch (Debian's python3-torch is enough; CPU or CUDA) and numpy; no transformers. The
target and the drafter are written here in plain torch from docs/gemma4.md section 4 and kiln's
draft step (src/models/gemma4_assistant.cpp), and the target is checked against `kiln logits`
before training, so the drafter learns from exactly the states kiln gives it at inference.

  python3 scripts/brown_model/prepare_corpus.py --corpus /tmp/package --out .brown_data
  python3 scripts/brown_model/train_mtp.py --data .brown_data --target models/brown-gemma4 \
      --kiln build/tools/kiln/kiln --out models/brown-gemma4/mtp

The assistant is what docs/speculative.md describes and kiln runs (--spec-type mtp): four Q-only
layers (3 sliding, 1 full) that read the target's K/V of its last sliding and last full layer,
input concat(target_embed(x_t) * sqrt(H), h), its own tied head, post_projection feeding h back.

Training (EAGLE-style self-distillation, teacher-forced on corpus windows): the frozen target runs
each window once and its final-normed hidden states h and the K/V of the two layers the drafter
reads are kept (its logits are recomputed from h). For every position t >= 1 of a window, draft
step j (j = 0..K-1) of the round at t takes token x[t + j] and, at j = 0, h[t - 1], else the
drafter's own post_projection output of step j - 1, all at RoPE position t, reads the target's
K/V before t (the sliding layers only the last `sliding_window` of them), and is trained towards
the target's distribution at row t + j (soft cross-entropy).

Reported in training_report.json next to the weights: the loss, and on held-out windows the
teacher-forced agreement of each draft step's argmax with the target's (a diagnostic; kiln
measures the real acceptance per draft position: docs/speculative.md).
"""
import argparse
import json
import math
import os
import random
import struct
import subprocess
import time

import numpy as np
import torch
import torch.nn.functional as F

BOS, EOS = 2, 1


def log(*a):
  print(*a, flush=True)


# ---- Files ----

def read_safetensors(path):
  data = open(path, "rb").read()
  (n,) = struct.unpack("<Q", data[:8])
  header = json.loads(data[8:8 + n])
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    begin, end = info["data_offsets"]
    raw = data[8 + n + begin:8 + n + end]
    if info["dtype"] == "BF16":
      bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
      value = bits.view(np.float32)
    elif info["dtype"] == "F32":
      value = np.frombuffer(raw, dtype=np.float32)
    else:
      raise ValueError(f"{name}: {info['dtype']} not read here")
    out[name] = torch.from_numpy(value.reshape(info["shape"]).copy())
  return out


def to_bf16_bits(value):
  """f32 -> bf16 bit patterns, rounded to nearest even."""
  bits = np.ascontiguousarray(value, dtype=np.float32).view(np.uint32)
  return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors_bf16(path, tensors):
  header, blobs, offset = {}, [], 0
  for name, value in tensors.items():
    blob = to_bf16_bits(value.detach().cpu().float().numpy()).tobytes()
    header[name] = {"dtype": "BF16", "shape": list(value.shape), "data_offsets": [offset, offset + len(blob)]}
    offset += len(blob)
    blobs.append(blob)
  text = json.dumps(header).encode()
  text += b" " * ((8 - len(text) % 8) % 8)
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def tokenize(kiln, model, path):
  """Documents (blank-line separated) as BOS + ids + EOS, through `kiln tokenize`."""
  with open(path, encoding="utf-8") as f:
    docs = [d.strip("\n") for d in f.read().split("\n\n") if d.strip()]
  ids = []
  for d in docs:
    out = subprocess.run([kiln, "tokenize", model, "-", "--ids-only", "--no-add-special"], input=d.encode(), capture_output=True, check=True)
    ids += [BOS] + [int(t) for t in out.stdout.split()] + [EOS]
  return torch.tensor(ids, dtype=torch.long)


# ---- Gemma 4 math (docs/gemma4.md section 4) ----

def rms(x, w=None, eps=1e-6):
  y = x * torch.pow(x.pow(2).mean(-1, keepdim=True) + eps, -0.5)
  return y * w if w is not None else y


def rope_tables(positions, head_dim, theta, rotary_fraction):
  """cos/sin [L, head_dim] of rotate-half RoPE; proportional RoPE rotates the first
  int(fraction * head_dim / 2) frequencies (the exponent still divides by head_dim)."""
  angles = int(rotary_fraction * head_dim // 2)
  j = torch.arange(head_dim // 2, dtype=torch.float32)
  inv = torch.where(j < angles, theta ** (-2 * j / head_dim), torch.zeros_like(j))
  ang = positions.float()[:, None] * inv[None, :]
  ang = torch.cat([ang, ang], dim=-1)
  return ang.cos(), ang.sin()


def rope(x, cos, sin):  # x [B, L, heads, d]; cos/sin [L, d]
  half = x.shape[-1] // 2
  rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
  return x * cos[None, :, None, :] + rotated * sin[None, :, None, :]


def attend(q, k, v, allowed):
  """q [B, Lq, h, d], k/v [B, Lk, kv, d], allowed [Lq, Lk] bool; scale 1, GQA."""
  group = q.shape[2] // k.shape[2]
  k = k.repeat_interleave(group, dim=2)
  v = v.repeat_interleave(group, dim=2)
  s = torch.einsum("bqhd,bkhd->bhqk", q, k)
  s = s.masked_fill(~allowed[None, None], torch.finfo(s.dtype).min)
  return torch.einsum("bhqk,bkhd->bqhd", torch.softmax(s, dim=-1), v)


def gelu(x):
  return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


class LayerGeometry:
  def __init__(self, config, i):
    self.full = config["layer_types"][i] == "full_attention"
    per = (config.get("per_layer_config") or {}).get(str(i), {})
    self.head_dim = per.get("head_dim", config["head_dim"])
    self.kv_heads = per.get("num_key_value_heads", config["num_key_value_heads"])
    rope_config = config["rope_parameters"]["full_attention" if self.full else "sliding_attention"]
    self.theta = rope_config["rope_theta"]
    self.fraction = rope_config.get("partial_rotary_factor", 1.0) if rope_config.get("rope_type") == "proportional" else 1.0
    self.window = 0 if self.full else config["sliding_window"]


class Target:
  """The frozen target: no PLE, MoE or KV sharing (the bundled model's architecture)."""

  def __init__(self, config, weights):
    for key in ("hidden_size_per_layer_input", "num_kv_shared_layers"):
      assert not config.get(key), f"the trainer's target has no {key}"
    assert not config.get("enable_moe_block")
    self.c, self.w = config, {k.removeprefix("model."): v for k, v in weights.items()}
    self.layers = [LayerGeometry(config, i) for i in range(config["num_hidden_layers"])]
    self.read = {"sliding": max(i for i, g in enumerate(self.layers) if not g.full), "full": max(i for i, g in enumerate(self.layers) if g.full)}

  @torch.no_grad()
  def forward(self, ids):
    """ids [B, L] -> final-normed h [B, L, H], and {"sliding"|"full": (K, V)} of the layers the
    drafter reads (K normed and rotated, V normed: as the cache holds them)."""
    c, w = self.c, self.w
    B, L = ids.shape
    pos = torch.arange(L)
    x = w["embed_tokens.weight"][ids] * math.sqrt(c["hidden_size"])
    kv = {}
    for i, g in enumerate(self.layers):
      p = f"layers.{i}."
      h = rms(x, w[p + "input_layernorm.weight"])
      q = (h @ w[p + "self_attn.q_proj.weight"].T).view(B, L, -1, g.head_dim)
      cos, sin = rope_tables(pos, g.head_dim, g.theta, g.fraction)
      q = rope(rms(q, w[p + "self_attn.q_norm.weight"]), cos, sin)
      kraw = (h @ w[p + "self_attn.k_proj.weight"].T).view(B, L, g.kv_heads, g.head_dim)
      vraw = kraw if (g.full and c.get("attention_k_eq_v")) else (h @ w[p + "self_attn.v_proj.weight"].T).view(B, L, g.kv_heads, g.head_dim)
      k = rope(rms(kraw, w[p + "self_attn.k_norm.weight"]), cos, sin)
      v = rms(vraw)
      allowed = pos[None, :] <= pos[:, None]
      if g.window:
        allowed &= pos[None, :] > pos[:, None] - g.window
      o = attend(q, k, v, allowed).reshape(B, L, -1) @ w[p + "self_attn.o_proj.weight"].T
      x = x + rms(o, w[p + "post_attention_layernorm.weight"])
      h = rms(x, w[p + "pre_feedforward_layernorm.weight"])
      y = (gelu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
      x = (x + rms(y, w[p + "post_feedforward_layernorm.weight"])) * w[p + "layer_scalar"]
      for kind, index in self.read.items():
        if index == i:
          kv[kind] = (k, v)
    return rms(x, w["norm.weight"]), kv

  def logits(self, h):
    z = h @ self.w["embed_tokens.weight"].T
    cap = self.c.get("final_logit_softcapping")
    return torch.tanh(z / cap) * cap if cap else z


class Drafter(torch.nn.Module):
  """kiln's draft step (src/models/gemma4_assistant.cpp) over every row of a window at once."""

  def __init__(self, target, hidden, intermediate, heads, seed):
    super().__init__()
    gen = torch.Generator().manual_seed(seed)
    c = target.c
    Hb, V = c["hidden_size"], c["vocab_size"]
    self.geometry = [target.layers[target.read["sliding"]]] * 3 + [target.layers[target.read["full"]]]
    self.kinds = ["sliding"] * 3 + ["full"]
    normal = lambda *shape, std: torch.nn.Parameter(torch.randn(*shape, generator=gen) * std)
    ones = lambda n: torch.nn.Parameter(torch.ones(n))
    p = {"model.embed_tokens.weight": normal(V, hidden, std=1 / math.sqrt(hidden)), "model.norm.weight": ones(hidden),
         "pre_projection.weight": normal(hidden, 2 * Hb, std=1 / math.sqrt(2 * Hb)),
         "post_projection.weight": normal(Hb, hidden, std=1 / math.sqrt(hidden))}
    for i, g in enumerate(self.geometry):
      q = heads * g.head_dim
      pre = f"model.layers.{i}."
      for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"):
        p[pre + n + ".weight"] = ones(hidden)
      p[pre + "layer_scalar"] = ones(1)
      p[pre + "self_attn.q_norm.weight"] = ones(g.head_dim)
      p[pre + "self_attn.q_proj.weight"] = normal(q, hidden, std=1 / math.sqrt(hidden))
      p[pre + "self_attn.o_proj.weight"] = normal(hidden, q, std=0.5 / math.sqrt(q))
      p[pre + "mlp.gate_proj.weight"] = normal(intermediate, hidden, std=1 / math.sqrt(hidden))
      p[pre + "mlp.up_proj.weight"] = normal(intermediate, hidden, std=1 / math.sqrt(hidden))
      p[pre + "mlp.down_proj.weight"] = normal(hidden, intermediate, std=0.5 / math.sqrt(intermediate))
    self.names = list(p)
    self.params = torch.nn.ParameterList([p[n] for n in self.names])
    self.heads, self.hidden, self.intermediate = heads, hidden, intermediate

  def tensors(self):
    return dict(zip(self.names, self.params))

  def step(self, embedded, state, kv, t_position, allowed):
    """One draft step for every row: embedded [B, L, Hb] (target embedding * sqrt(Hb)), state
    [B, L, Hb]; returns the logits [B, L, V] and the next state."""
    w = self.tensors()
    B, L, _ = embedded.shape
    x = torch.cat([embedded, state], dim=-1) @ w["pre_projection.weight"].T
    for i, (g, kind) in enumerate(zip(self.geometry, self.kinds)):
      p = f"model.layers.{i}."
      h = rms(x, w[p + "input_layernorm.weight"])
      q = (h @ w[p + "self_attn.q_proj.weight"].T).view(B, L, self.heads, g.head_dim)
      cos, sin = rope_tables(t_position, g.head_dim, g.theta, g.fraction)
      q = rope(rms(q, w[p + "self_attn.q_norm.weight"]), cos, sin)
      k, v = kv[kind]
      o = attend(q, k, v, allowed[kind]).reshape(B, L, -1) @ w[p + "self_attn.o_proj.weight"].T
      x = x + rms(o, w[p + "post_attention_layernorm.weight"])
      h = rms(x, w[p + "pre_feedforward_layernorm.weight"])
      y = (gelu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
      x = (x + rms(y, w[p + "post_feedforward_layernorm.weight"])) * w[p + "layer_scalar"]
    y = rms(x, w["model.norm.weight"])
    return y @ w["model.embed_tokens.weight"].T, y @ w["post_projection.weight"].T

  def config(self, target):
    c = target.c
    full = self.geometry[3]
    text = dict(model_type="gemma4_text", hidden_size=self.hidden, intermediate_size=self.intermediate, num_hidden_layers=4,
                layer_types=["sliding_attention"] * 3 + ["full_attention"], num_attention_heads=self.heads,
                num_key_value_heads=c["num_key_value_heads"], head_dim=c["head_dim"], global_head_dim=full.head_dim,
                attention_k_eq_v=c.get("attention_k_eq_v", False), sliding_window=c["sliding_window"], vocab_size=c["vocab_size"],
                max_position_embeddings=c["max_position_embeddings"], rope_parameters=c["rope_parameters"],
                hidden_activation="gelu_pytorch_tanh", final_logit_softcapping=None, hidden_size_per_layer_input=0,
                vocab_size_per_layer_input=0, num_kv_shared_layers=4, rms_norm_eps=c["rms_norm_eps"], tie_word_embeddings=True,
                bos_token_id=BOS, eos_token_id=EOS, pad_token_id=0)
    return dict(architectures=["Gemma4AssistantForCausalLM"], model_type="gemma4_assistant", backbone_hidden_size=c["hidden_size"],
                use_ordered_embeddings=False, tie_word_embeddings=True, dtype="bfloat16", text_config=text)


def check_against_kiln(target, kiln, model, ids):
  """The target here against `kiln logits` on the same tokens: the drafter must learn from the
  states kiln has."""
  out = "/tmp/train_mtp_kiln_logits.npy"
  subprocess.run([kiln, "logits", model, "--tokens", ",".join(map(str, ids)), "--out", out, "--threads", "2"], check=True,
                 capture_output=True)
  theirs = torch.from_numpy(np.load(out))
  h, _ = target.forward(torch.tensor([ids]))
  diff = (target.logits(h)[0] - theirs).abs().max().item()
  log(f"target vs kiln logits on {len(ids)} tokens: max |diff| {diff:.2e}")
  if diff > 2e-3:
    raise SystemExit("the trainer's target does not compute what kiln computes")
  return diff


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--data", required=True)
  ap.add_argument("--target", required=True)
  ap.add_argument("--kiln", required=True, help="a kiln binary (tokenizes the corpus, checks the target)")
  ap.add_argument("--out", required=True)
  ap.add_argument("--seed", type=int, default=1234)
  ap.add_argument("--hidden", type=int, default=128)
  ap.add_argument("--intermediate", type=int, default=384)
  ap.add_argument("--heads", type=int, default=4)
  ap.add_argument("--draft-steps", type=int, default=3)
  ap.add_argument("--seq", type=int, default=256)
  ap.add_argument("--windows", type=int, default=800, help="training windows the target runs once")
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--steps", type=int, default=2000)
  ap.add_argument("--lr", type=float, default=3e-3)
  ap.add_argument("--max-seconds", type=float, default=1200.0)
  ap.add_argument("--eval-windows", type=int, default=32)
  ap.add_argument("--threads", type=int, default=0)
  ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
  args = ap.parse_args()

  t_start = time.time()
  if args.threads:
    torch.set_num_threads(args.threads)
  random.seed(args.seed)
  torch.manual_seed(args.seed)
  config = json.load(open(os.path.join(args.target, "config.json")))
  target = Target(config, read_safetensors(os.path.join(args.target, "model.safetensors")))
  train = tokenize(args.kiln, args.target, os.path.join(args.data, "train.txt"))
  heldout = tokenize(args.kiln, args.target, os.path.join(args.data, "heldout.txt"))
  log(f"tokens: train {train.numel()}, held-out {heldout.numel()} ({time.time() - t_start:.0f}s)")
  kiln_diff = check_against_kiln(target, args.kiln, args.target, heldout[:200].tolist())

  L, K, W = args.seq, args.draft_steps, config["sliding_window"]
  gen = torch.Generator().manual_seed(args.seed)

  def windows(data, count):
    starts = torch.randint(0, data.numel() - L - 1, (count,), generator=gen)
    return torch.stack([data[s:s + L] for s in starts.tolist()])

  def run_target(x):
    """The frozen target over windows, kept in f16: h and the read layers' K/V."""
    hs, kvs = [], {"sliding": ([], []), "full": ([], [])}
    for i in range(0, x.shape[0], 16):
      h, kv = target.forward(x[i:i + 16])
      hs.append(h.half())
      for kind, (k, v) in kv.items():
        kvs[kind][0].append(k.half())
        kvs[kind][1].append(v.half())
    return torch.cat(hs), {kind: (torch.cat(k), torch.cat(v)) for kind, (k, v) in kvs.items()}

  train_x, eval_x = windows(train, args.windows), windows(heldout, args.eval_windows)
  train_h, train_kv = run_target(train_x)
  eval_h, eval_kv = run_target(eval_x)
  log(f"target states of {train_x.numel()} training tokens ({time.time() - t_start:.0f}s)")

  device = torch.device(args.device)
  drafter = Drafter(target, args.hidden, args.intermediate, args.heads, args.seed).to(device)
  target.w = {k: v.to(device) for k, v in target.w.items()}
  params = sum(p.numel() for p in drafter.parameters())
  log(f"drafter: {params / 1e6:.2f}M parameters, on {device}")
  pos = torch.arange(L, device=device)
  before = pos[None, :] < pos[:, None]  # row t reads the target's keys before t
  allowed = {"full": before, "sliding": before & (pos[None, :] >= pos[:, None] - W)}
  embed_scale = math.sqrt(config["hidden_size"])
  shift = lambda a, j: torch.cat([a[:, j:], torch.zeros_like(a[:, :j])], dim=1)  # a[t + j] at row t

  def rounds(x, h, kv):
    """Per draft step j: the drafter's logits at every row t, the target's logits at row t + j, and
    the rows where step j exists (t >= 1, t + j < L)."""
    x, h = x.to(device), h.to(device).float()
    kv = {kind: (k.to(device).float(), v.to(device).float()) for kind, (k, v) in kv.items()}
    with torch.no_grad():
      labels = target.logits(h)
    state = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)  # h[t - 1] at row t
    out = []
    for j in range(K):
      embedded = target.w["embed_tokens.weight"][shift(x, j)] * embed_scale
      logits, state = drafter.step(embedded, state, kv, pos, allowed)
      out.append((logits, shift(labels, j), (pos >= 1) & (pos + j <= L - 1)))
    return out

  def evaluate():
    agree, chained, count = [0] * K, [0] * K, [0] * K
    with torch.no_grad():
      for i in range(0, eval_x.shape[0], args.batch):
        x = eval_x[i:i + args.batch].to(device)
        alive = None
        greedy = None
        for j, (lg, labels, valid) in enumerate(rounds(x, eval_h[i:i + args.batch], {k: (a[i:i + args.batch], b[i:i + args.batch]) for k, (a, b) in eval_kv.items()})):
          target_next = labels.argmax(-1)
          hit = (lg.argmax(-1) == target_next) & valid[None]
          # Chained: every earlier step agreed and its input token is the target's greedy token,
          # so a greedy round would have reached this step.
          if j == 0:
            alive = hit
          else:
            alive = alive & hit & (shift(x, j) == greedy)
          greedy = target_next
          agree[j] += int(hit.sum())
          chained[j] += int(alive.sum())
          count[j] += int(valid.sum()) * x.shape[0]
    return [a / c for a, c in zip(agree, count)], [a / c for a, c in zip(chained, count)]

  optimizer = torch.optim.AdamW(drafter.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
  # Warm-up, then a cosine over the run's progress: steps done, or time spent of what
  # --max-seconds leaves for training, whichever is further, so a run cut by time still anneals.
  t_train = time.time()
  budget = max(1.0, args.max_seconds - (t_train - t_start))
  progress = lambda step: min(1.0, max(step / args.steps, (time.time() - t_train) / budget))
  schedule = lambda step: min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * progress(step)))
  scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
  report = {"args": vars(args), "torch": torch.__version__, "device": str(device), "parameters": params,
            "target_vs_kiln_max_abs_logit_diff": kiln_diff, "losses": []}
  step = 0
  while step < args.steps and time.time() - t_start < args.max_seconds:
    index = torch.randint(0, train_x.shape[0], (args.batch,), generator=gen)
    loss = 0.0
    for lg, labels, valid in rounds(train_x[index], train_h[index], {k: (a[index], b[index]) for k, (a, b) in train_kv.items()}):
      ce = -(F.softmax(labels, -1) * F.log_softmax(lg, -1)).sum(-1)
      loss = loss + (ce * valid[None]).sum() / (valid.sum() * lg.shape[0])
    loss = loss / K
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(drafter.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    if step % 50 == 0:
      report["losses"].append([step, float(loss)])
      log(f"step {step}: loss {float(loss):.4f} ({time.time() - t_start:.0f}s)")
    step += 1
  report["steps"] = step
  report["train_seconds"] = time.time() - t_start
  agree, chained = evaluate()
  report["heldout_step_agreement"] = agree
  report["heldout_chained_agreement"] = chained
  log(f"held-out agreement per draft step: {[round(a, 3) for a in agree]}; chained {[round(a, 3) for a in chained]}")

  os.makedirs(args.out, exist_ok=True)
  write_safetensors_bf16(os.path.join(args.out, "model.safetensors"), drafter.tensors())
  with open(os.path.join(args.out, "config.json"), "w") as f:
    json.dump(drafter.config(target), f, indent=1)
  with open(os.path.join(args.out, "training_report.json"), "w") as f:
    json.dump(report, f, indent=1)
  log(f"saved to {args.out} in {time.time() - t_start:.0f}s")


if __name__ == "__main__":
  main()
