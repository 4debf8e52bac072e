#!/usr/bin/env python3
"""Train the bundled model's MTP drafter: a Gemma 4 assistant (Gemma4AssistantForCausalLM) for
models/brown-gemma4, distilled from the model's own outputs on the Brown corpus.

Needs torch, transformers (5.17), tokenizers and a GPU.

  python3 scripts/brown_model/prepare_corpus.py --corpus /tmp/package --out .brown_data
  python3 scripts/brown_model/train_mtp.py --data .brown_data --target models/brown-gemma4 \
      --out models/brown-gemma4/mtp

The assistant is what docs/speculative.md describes and kiln runs (--spec-type mtp): four Q-only
layers (3 sliding, 1 full) that read the target's K/V of its last sliding and last full layer,
input concat(target_embed(x_t)·√H, h), its own tied head, post_projection feeding h back.

Training (EAGLE-style self-distillation, teacher-forced on corpus windows): the frozen target
runs each window once and gives its final-normed hidden states h, its shared K/V and its next-token
distributions p. For every position t >= 1 of a window, draft step j (j = 0..K-1) of the round at
t reads the target's K/V before t (the sliding layers the last `sliding_window` of them), takes
token x[t + j] and, at j = 0, h[t - 1], else the drafter's own post_projection output of step
j - 1, all at RoPE position t, and is trained towards p[t + j] (soft cross-entropy). All positions
of a window train at once with per-layer-type masks (the keys before each query); the assistant's
text model takes such masks as its attention_mask mapping.

Reported (training_report.json next to the weights): the loss per step and, on held-out windows,
the teacher-forced agreement of each draft step's argmax with the target's (a diagnostic; kiln
measures the real acceptance per draft position: docs/speculative.md).
"""
import argparse
import json
import math
import os
import random
import time

BOS, EOS = 2, 1


def log(*a):
  print(*a, flush=True)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--data", required=True)
  ap.add_argument("--target", required=True)
  ap.add_argument("--out", required=True)
  ap.add_argument("--seed", type=int, default=1234)
  ap.add_argument("--hidden", type=int, default=256)
  ap.add_argument("--intermediate", type=int, default=768)
  ap.add_argument("--heads", type=int, default=4)
  ap.add_argument("--draft-steps", type=int, default=3)
  ap.add_argument("--seq", type=int, default=256)
  ap.add_argument("--batch", type=int, default=32)
  ap.add_argument("--steps", type=int, default=3000)
  ap.add_argument("--lr", type=float, default=2e-3)
  ap.add_argument("--max-seconds", type=float, default=300.0)
  ap.add_argument("--eval-windows", type=int, default=64)
  args = ap.parse_args()

  import torch
  import torch.nn.functional as F
  import transformers
  from tokenizers import Tokenizer
  from transformers import AutoModelForCausalLM, Gemma4AssistantConfig, Gemma4AssistantForCausalLM

  t_start = time.time()
  random.seed(args.seed)
  torch.manual_seed(args.seed)
  device = "cuda"
  target_json = json.load(open(os.path.join(args.target, "config.json")))
  tok = Tokenizer.from_file(os.path.join(args.target, "tokenizer.json"))

  def stream(name):
    with open(os.path.join(args.data, name), encoding="utf-8") as f:
      docs = [d.strip("\n") for d in f.read().split("\n\n") if d.strip()]
    ids = []
    for d in docs:
      ids += [BOS] + tok.encode(d, add_special_tokens=False).ids + [EOS]
    return torch.tensor(ids, dtype=torch.long)

  train, heldout = stream("train.txt"), stream("heldout.txt")
  log(f"tokens: train {train.numel()}, held-out {heldout.numel()}")

  target = AutoModelForCausalLM.from_pretrained(args.target, dtype=torch.float32, attn_implementation="eager").to(device).eval()
  for p in target.parameters():
    p.requires_grad_(False)
  cap = target_json.get("final_logit_softcapping")

  # The drafter's attention geometry is the target's caches' (its full layer's as the target has it).
  full = target_json["layer_types"].index("full_attention")
  text = dict(model_type="gemma4_text", hidden_size=args.hidden, intermediate_size=args.intermediate, num_hidden_layers=4,
              layer_types=["sliding_attention"] * 3 + ["full_attention"], num_attention_heads=args.heads,
              num_key_value_heads=target_json["num_key_value_heads"], head_dim=target_json["head_dim"],
              attention_k_eq_v=target_json.get("attention_k_eq_v", False), sliding_window=target_json["sliding_window"],
              vocab_size=target_json["vocab_size"], max_position_embeddings=target_json["max_position_embeddings"],
              rope_parameters=target_json["rope_parameters"], hidden_activation="gelu_pytorch_tanh", final_logit_softcapping=None,
              hidden_size_per_layer_input=0, vocab_size_per_layer_input=0, num_kv_shared_layers=4, enable_moe_block=False,
              use_double_wide_mlp=False, rms_norm_eps=target_json["rms_norm_eps"], tie_word_embeddings=True,
              bos_token_id=BOS, eos_token_id=EOS, pad_token_id=0)
  per_layer = target_json.get("per_layer_config") or {}
  if str(full) in per_layer:
    text["per_layer_config"] = {"3": dict(per_layer[str(full)])}
  for key in ("global_head_dim", "num_global_key_value_heads"):
    if target_json.get(key) is not None:
      text[key] = target_json[key]
  cfg = Gemma4AssistantConfig(text_config=text, backbone_hidden_size=target_json["hidden_size"], use_ordered_embeddings=False,
                              tie_word_embeddings=True)
  drafter = Gemma4AssistantForCausalLM._from_config(cfg, attn_implementation="eager").to(device).float()
  drafter.train()
  params = sum(p.numel() for p in drafter.parameters())
  log(f"drafter: {params / 1e6:.2f}M parameters")

  L, B, K = args.seq, args.batch, args.draft_steps
  W = target_json["sliding_window"]
  pos = torch.arange(L, device=device)
  q, k = pos[:, None], pos[None, :]
  neg = torch.finfo(torch.float32).min

  def masks(batch):
    full_ok = k < q
    swa_ok = full_ok & (k >= q - W)
    as_bias = lambda ok: torch.where(ok, 0.0, neg)[None, None].expand(batch, 1, L, L)
    return {"full_attention": as_bias(full_ok), "sliding_attention": as_bias(swa_ok)}

  def windows(data, count, generator):
    starts = torch.randint(0, data.numel() - L - 1, (count,), generator=generator)
    return torch.stack([data[s:s + L] for s in starts.tolist()]).to(device)

  def target_pass(x):
    with torch.no_grad():
      out = target.model(input_ids=x, return_shared_kv_states=True, use_cache=False)
      h = out.last_hidden_state.float()
      logits = target.lm_head(h).float()
      if cap:
        logits = torch.tanh(logits / cap) * cap
      return h, out.shared_kv_states, logits

  def draft_steps(x, h, kv, logits):
    """Per draft step j: the drafter's logits at every row t and the valid rows' mask/labels."""
    batch = x.shape[0]
    attention = masks(batch)
    position_ids = pos[None].expand(batch, L)
    embed = target.get_input_embeddings()
    state = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)  # h[t - 1] at row t
    results = []
    for j in range(K):
      tokens = torch.cat([x[:, j:], torch.zeros_like(x[:, :j])], dim=1)  # x[t + j] at row t
      labels = torch.cat([logits[:, j:], torch.zeros_like(logits[:, :j])], dim=1)  # target row t + j
      valid = (pos >= 1) & (pos + j <= L - 1)
      z = drafter.pre_projection(torch.cat([embed(tokens).float(), state], dim=-1))
      y = drafter.model(inputs_embeds=z, attention_mask=attention, position_ids=position_ids, shared_kv_states=kv,
                        use_cache=False).last_hidden_state
      results.append((drafter.lm_head(y), labels, valid))
      state = drafter.post_projection(y)
    return results

  optimizer = torch.optim.AdamW(drafter.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
  schedule = lambda step: min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(step, args.steps) / args.steps))
  scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
  generator = torch.Generator().manual_seed(args.seed)
  eval_generator = torch.Generator().manual_seed(args.seed + 1)
  eval_x = windows(heldout, args.eval_windows, eval_generator)

  def evaluate():
    drafter.eval()
    agree = [0] * K
    chained = [0] * K
    count = [0] * K
    with torch.no_grad():
      for i in range(0, eval_x.shape[0], B):
        x = eval_x[i:i + B]
        h, kv, logits = target_pass(x)
        greedy = logits.argmax(-1)
        shift = lambda a, j: torch.cat([a[:, j:], torch.zeros_like(a[:, :j])], dim=1)  # a[t + j] at row t
        alive = None
        for j, (lg, labels, valid) in enumerate(draft_steps(x, h, kv, logits)):
          hit = (lg.argmax(-1) == labels.argmax(-1)) & valid[None]
          # Chained: every earlier step of the round agreed, and the step's input token is the
          # target's own greedy token (as in a greedy round), so the round would have got here.
          alive = hit if alive is None else alive & hit & (shift(x, j) == shift(greedy, j - 1))
          agree[j] += int(hit.sum())
          chained[j] += int(alive.sum())
          count[j] += int(valid.sum()) * x.shape[0]
    drafter.train()
    return [a / c for a, c in zip(agree, count)], [a / c for a, c in zip(chained, count)]

  report = {"args": vars(args), "torch": torch.__version__, "transformers": transformers.__version__,
            "device": torch.cuda.get_device_name(0), "parameters": params, "losses": []}
  step = 0
  while step < args.steps and time.time() - t_start < args.max_seconds:
    x = windows(train, B, generator)
    h, kv, logits = target_pass(x)
    loss = 0.0
    for lg, labels, valid in draft_steps(x, h, kv, logits):
      ce = -(F.softmax(labels, -1) * F.log_softmax(lg.float(), -1)).sum(-1)
      loss = loss + (ce * valid[None]).sum() / (valid.sum() * x.shape[0])
    loss = loss / K
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(drafter.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    if step % 100 == 0:
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
  drafter.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
  with open(os.path.join(args.out, "training_report.json"), "w") as f:
    json.dump(report, f, indent=1)
  log(f"saved to {args.out} in {time.time() - t_start:.0f}s")


if __name__ == "__main__":
  main()
