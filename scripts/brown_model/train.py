#!/usr/bin/env python3
"""Train kiln's bundled demo model: a small Gemma 4 (Gemma4ForCausalLM) on the Brown corpus.

Needs torch, transformers (5.17), tokenizers and a GPU. Reproducible from --seed: the tokenizer,
the validation documents, the batches and the initial weights all derive from it.

  python3 scripts/brown_model/prepare_corpus.py --corpus /tmp/package --out .brown_data
  python3 scripts/brown_model/train.py --data .brown_data --model-out models/brown-gemma4 \
      --goldens-out tests/brown_model

Stages:
  1. tokenizer: byte-fallback BPE (tokenizers library), Gemma-style "▁" normalizer, no prefix
     space, <pad>=0 <eos>=1 <bos>=2 <unk>=3, <0x00>..<0xFF> at 4..259, learned pieces after.
  2. data: every document is <bos> text <eos>; training samples random windows of the
     concatenated stream. A few training documents (chosen by the seed) are kept aside for
     validation (model selection); the held-out split is only used for the final report.
  3. model: Gemma4ForCausalLM, (S,S,S,F) x 2, sliding head_dim 64 / full head_dim 128, k_eq_v with
     one global KV head on full layers, trained layer_scalar, final softcap 30. fp32 master
     weights, bf16 autocast, AdamW, cosine schedule. The best validation checkpoint is kept.
  4. save: bf16 safetensors (save_pretrained) + tokenizer.json, tokenizer_config.json,
     generation_config.json.
  5. goldens: the saved checkpoint is reloaded in fp32 with eager attention (what kiln's CPU path
     computes) and gives per-token log-likelihoods of a held-out passage, the perplexity of the
     held-out split (definition below, identical to `kiln perplexity`) and greedy continuations.

Perplexity (kiln perplexity and this script, llama.cpp's llama-perplexity for stride = ctx):
  ids = [<bos>] + encode(file text). Chunks of `ctx` tokens start at 0, stride, 2*stride, ... (only
  whole chunks). The first token of every chunk is replaced by <bos>. With
  first = ctx - min(stride, ctx // 2), the logits at positions j in [first, ctx - 1) score token
  j + 1. PPL = exp(mean negative log-likelihood over all scored tokens), log-softmax in float64.
"""
import argparse
import json
import math
import os
import random
import sys
import time

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]
PAD, EOS, BOS, UNK = 0, 1, 2, 3
BYTES = [f"<0x{i:02X}>" for i in range(256)]
SPACE = "\u2581"


def log(*a):
  print(*a, flush=True)


# ----------------------------------------------------------------------------------------------
# 1. tokenizer
# ----------------------------------------------------------------------------------------------
def train_tokenizer(texts, vocab_size):
  from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
  from tokenizers import processors, trainers

  base = Tokenizer(models.BPE())
  base.normalizer = normalizers.Replace(" ", SPACE)
  base.pre_tokenizer = pre_tokenizers.Split(SPACE, behavior="merged_with_next")
  trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIALS) - len(BYTES), special_tokens=[],
                                limit_alphabet=200, show_progress=False)
  base.train_from_iterator(texts, trainer)
  learned = json.loads(base.to_str())["model"]
  vocab = {s: i for i, s in enumerate(SPECIALS)}
  for i, b in enumerate(BYTES):
    vocab[b] = len(SPECIALS) + i
  for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
    if piece not in vocab:
      vocab[piece] = len(vocab)
  merges = [tuple(m) if isinstance(m, (list, tuple)) else tuple(m.split(" ", 1)) for m in learned["merges"]]

  tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
  tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
  tok.normalizer = normalizers.Replace(" ", SPACE)
  tok.pre_tokenizer = pre_tokenizers.Split(SPACE, behavior="merged_with_next")
  tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
  tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                     special_tokens=[("<bos>", BOS)])
  return tok


def save_tokenizer_files(tok, out_dir, max_len):
  tok.save(os.path.join(out_dir, "tokenizer.json"))
  cfg = {
      "add_bos_token": True, "add_eos_token": False,
      "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
      "clean_up_tokenization_spaces": False, "model_max_length": max_len,
      "padding_side": "left", "tokenizer_class": "PreTrainedTokenizerFast",
  }
  with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
  with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
    json.dump({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}, f, indent=2)


def encode(tok, text, bos=True):
  ids = tok.encode(text, add_special_tokens=False).ids
  return ([BOS] if bos else []) + ids


# ----------------------------------------------------------------------------------------------
# perplexity, the one definition (see the module docstring)
# ----------------------------------------------------------------------------------------------
def perplexity(model, ids, ctx, stride, device, batch=16):
  import torch
  n = len(ids)
  first = ctx - min(stride, ctx // 2)
  starts = list(range(0, n - ctx + 1, stride))
  assert starts, f"need at least {ctx} tokens, have {n}"
  nll, count = 0.0, 0
  for b in range(0, len(starts), batch):
    rows = []
    for s in starts[b:b + batch]:
      chunk = list(ids[s:s + ctx])
      chunk[0] = BOS
      rows.append(chunk)
    x = torch.tensor(rows, device=device)
    with torch.no_grad():
      logits = model(input_ids=x).logits.double()
    lp = torch.log_softmax(logits[:, first:ctx - 1], dim=-1)
    tgt = x[:, first + 1:ctx]
    picked = lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    nll -= picked.sum().item()
    count += picked.numel()
  return math.exp(nll / count), count, len(starts)


# ----------------------------------------------------------------------------------------------
def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--data", required=True)
  ap.add_argument("--model-out", required=True)
  ap.add_argument("--goldens-out", required=True)
  ap.add_argument("--seed", type=int, default=1234)
  ap.add_argument("--vocab", type=int, default=8192)
  ap.add_argument("--hidden", type=int, default=384)
  ap.add_argument("--intermediate", type=int, default=1152)
  ap.add_argument("--layers", type=int, default=8)
  ap.add_argument("--seq", type=int, default=1024)
  ap.add_argument("--batch", type=int, default=24)
  ap.add_argument("--steps", type=int, default=600)
  ap.add_argument("--lr", type=float, default=1.5e-3)
  ap.add_argument("--max-seconds", type=float, default=270.0, help="safety cap on training time")
  ap.add_argument("--eval-every", type=int, default=50)
  ap.add_argument("--val-docs", type=int, default=10)
  ap.add_argument("--ppl-ctx", type=int, default=512)
  args = ap.parse_args()

  import numpy as np
  import torch
  import transformers
  from transformers import Gemma4ForCausalLM, Gemma4TextConfig, GenerationConfig

  t_start = time.time()
  random.seed(args.seed)
  np.random.seed(args.seed)
  torch.manual_seed(args.seed)
  device = "cuda"
  os.makedirs(args.model_out, exist_ok=True)
  os.makedirs(args.goldens_out, exist_ok=True)
  report = {"seed": args.seed, "args": vars(args), "torch": torch.__version__,
            "transformers": transformers.__version__, "device": torch.cuda.get_device_name(0)}

  def read_docs(name):
    with open(os.path.join(args.data, name), encoding="utf-8") as f:
      return [d.strip("\n") for d in f.read().split("\n\n") if d.strip()]

  train_docs = read_docs("train.txt")
  heldout_docs = read_docs("heldout.txt")
  val_idx = set(random.Random(args.seed + 1).sample(range(len(train_docs)), args.val_docs))
  val_docs = [d for i, d in enumerate(train_docs) if i in val_idx]
  fit_docs = [d for i, d in enumerate(train_docs) if i not in val_idx]
  log(f"documents: fit {len(fit_docs)}, validation {len(val_docs)}, held-out {len(heldout_docs)}")

  # 1. tokenizer (trained on the fit documents only)
  t0 = time.time()
  tok = train_tokenizer(fit_docs, args.vocab)
  vocab_size = tok.get_vocab_size()
  log(f"tokenizer: {vocab_size} tokens in {time.time() - t0:.1f}s")
  assert vocab_size <= args.vocab
  sample = "The jury said it did find that \"many\" of Georgia's laws are outmoded. Naïve café!"
  enc = tok.encode(sample)
  log("sample:", enc.tokens[:40])
  roundtrip = tok.decode(enc.ids, skip_special_tokens=True)
  report["tokenizer_roundtrip_ok"] = enc.ids[0] == BOS and roundtrip == sample
  log("roundtrip:", report["tokenizer_roundtrip_ok"], repr(roundtrip))
  report["tokenizer_seconds"] = time.time() - t0

  # 2. data
  def stream(docs):
    out = []
    for d in docs:
      out += encode(tok, d) + [EOS]
    return torch.tensor(out, dtype=torch.long)
  fit = stream(fit_docs)
  val = stream(val_docs)
  log(f"tokens: fit {fit.numel()}, validation {val.numel()}")
  report["fit_tokens"] = fit.numel()

  # 3. model
  S, F = "sliding_attention", "full_attention"
  layer_types = [(F if (i + 1) % 4 == 0 else S) for i in range(args.layers)]
  layer_types[-1] = F
  cfg = Gemma4TextConfig(
      vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
      num_hidden_layers=args.layers, layer_types=layer_types,
      num_attention_heads=6, num_key_value_heads=2, head_dim=64,
      global_head_dim=128, num_global_key_value_heads=1, attention_k_eq_v=True,
      sliding_window=128, final_logit_softcapping=30.0, hidden_size_per_layer_input=0,
      max_position_embeddings=4096, attention_dropout=0.1,
      pad_token_id=PAD, eos_token_id=EOS, bos_token_id=BOS, tie_word_embeddings=True,
  )
  model = Gemma4ForCausalLM._from_config(cfg, attn_implementation="sdpa").to(device)
  # layer_scalar is a buffer in transformers; train it as a parameter, save it back as a buffer.
  scalars = []
  for layer in model.model.layers:
    value = layer.layer_scalar.detach().clone().float()
    del layer._buffers["layer_scalar"]
    layer.layer_scalar = torch.nn.Parameter(value)
    scalars.append(layer.layer_scalar)
  n_params = sum(p.numel() for p in model.parameters())
  log(f"model: {n_params / 1e6:.2f}M parameters, layers {layer_types}")
  report["parameters"] = n_params

  decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
  no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
  opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
  warmup = max(1, args.steps // 20)

  def lr_at(step):
    if step < warmup:
      return args.lr * (step + 1) / warmup
    p = (step - warmup) / max(1, args.steps - warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

  torch.backends.cuda.matmul.allow_tf32 = True
  gen = torch.Generator().manual_seed(args.seed)

  def batch_of(data, n, offsets=None):
    if offsets is None:
      offsets = torch.randint(0, data.numel() - args.seq - 1, (n,), generator=gen)
    rows = torch.stack([data[o:o + args.seq + 1] for o in offsets.tolist()])
    return rows.to(device, non_blocking=True)

  def loss_of(rows):
    with torch.autocast("cuda", dtype=torch.bfloat16):
      logits = model(input_ids=rows[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                             rows[:, 1:].reshape(-1))

  val_offsets = torch.arange(0, val.numel() - args.seq - 1, args.seq)

  def validate():
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
      for b in range(0, len(val_offsets), 32):
        rows = batch_of(val, 0, val_offsets[b:b + 32])
        total += loss_of(rows).item() * rows.shape[0]
        n += rows.shape[0]
    model.train()
    return total / n

  model.train()
  history = []
  best = (float("inf"), -1, None)
  t_train = time.time()
  step = 0
  for step in range(args.steps):
    for g in opt.param_groups:
      g["lr"] = lr_at(step)
    loss = loss_of(batch_of(fit, args.batch))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    last = step + 1 == args.steps or time.time() - t_train > args.max_seconds
    if (step + 1) % args.eval_every == 0 or last:
      v = validate()
      history.append({"step": step + 1, "train_loss": loss.item(), "val_loss": v,
                      "seconds": time.time() - t_train})
      log(f"step {step + 1}: train {loss.item():.3f} val {v:.3f} ({time.time() - t_train:.0f}s)")
      if v < best[0]:
        best = (v, step + 1, {k: t.detach().clone() for k, t in model.state_dict().items()})
    elif step % 20 == 0:
      log(f"step {step}: train {loss.item():.3f} lr {lr_at(step):.2e} ({time.time() - t_train:.0f}s)")
    if last:
      break
  train_seconds = time.time() - t_train
  report.update({"train_seconds": train_seconds, "steps_run": step + 1, "best_step": best[1],
                 "best_val_loss": best[0], "history": history,
                 "tokens_seen": (step + 1) * args.batch * args.seq})
  log(f"training: {step + 1} steps in {train_seconds:.0f}s, best validation loss {best[0]:.3f} at step {best[1]}")
  model.load_state_dict(best[2])

  # 4. save (bf16)
  for layer in model.model.layers:
    value = layer.layer_scalar.detach().clone()
    del layer._parameters["layer_scalar"]
    layer.register_buffer("layer_scalar", value)
  report["layer_scalar"] = [float(l.layer_scalar.reshape(-1)[0]) for l in model.model.layers]
  model.config.attention_dropout = 0.0
  model.config.use_cache = True
  model = model.to(torch.bfloat16)
  model.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
  model.save_pretrained(args.model_out)
  # The defaults `kiln run` and transformers' generate() use: sampling, since greedy decoding of a
  # model this small loops. (The goldens below ask for do_sample=False explicitly.)
  with open(os.path.join(args.model_out, "generation_config.json"), "w") as f:
    json.dump({"bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD, "do_sample": True,
               "temperature": 0.8, "top_k": 40, "top_p": 0.95, "repetition_penalty": 1.1}, f, indent=2)
    f.write("\n")
  save_tokenizer_files(tok, args.model_out, 4096)
  del model
  torch.cuda.empty_cache()

  # 5. goldens from the saved checkpoint, fp32, eager, no TF32
  torch.backends.cuda.matmul.allow_tf32 = False
  torch.backends.cudnn.allow_tf32 = False
  try:
    torch.backends.cuda.matmul.fp32_precision = "ieee"
  except Exception:
    pass
  ref = Gemma4ForCausalLM.from_pretrained(args.model_out, dtype=torch.float32, attn_implementation="eager").to(device).eval()
  try:
    from transformers import AutoTokenizer
    hf_tok = AutoTokenizer.from_pretrained(args.model_out)
    report["autotokenizer_matches"] = hf_tok(sample)["input_ids"] == enc.ids
  except Exception as e:  # informative only
    report["autotokenizer_matches"] = f"error: {e}"

  # held-out passage: the start of the first held-out document, a few hundred tokens
  doc = heldout_docs[0]
  cut = doc[:1900]
  passage = cut[:cut.rfind(" ")]
  with open(os.path.join(args.goldens_out, "passage.txt"), "w", encoding="utf-8") as f:
    f.write(passage)
  ids = encode(tok, passage)
  x = torch.tensor([ids], device=device)
  with torch.no_grad():
    logits = ref(input_ids=x).logits[0].double()
  lp = torch.log_softmax(logits, dim=-1)
  token_lp = lp[:-1].gather(-1, x[0, 1:].unsqueeze(-1)).squeeze(-1)
  top2 = logits.topk(2, dim=-1).values
  with open(os.path.join(args.goldens_out, "loglik.json"), "w") as f:
    json.dump({"source": "transformers Gemma4ForCausalLM, fp32 from the saved bf16 weights, eager attention",
               "ids": ids, "logprobs": token_lp.tolist(), "argmax": logits.argmax(-1).tolist(),
               "logit_sample_positions": [0, len(ids) // 2, len(ids) - 1],
               "logits_at_sample_positions": [logits[p].tolist()[:64] for p in [0, len(ids) // 2, len(ids) - 1]],
               "min_top2_gap": float((top2[:, 0] - top2[:, 1]).min())}, f)
  log(f"passage: {len(ids)} tokens, mean logprob {token_lp.mean().item():.4f}")

  # perplexity: a committed sample of the held-out split and the whole split
  sample_text = "\n\n".join(heldout_docs[:3]) + "\n"
  with open(os.path.join(args.goldens_out, "heldout_sample.txt"), "w", encoding="utf-8") as f:
    f.write(sample_text)
  with open(os.path.join(args.data, "heldout.txt"), encoding="utf-8") as f:
    heldout_text = f.read()
  ppl = {"definition": "see scripts/brown_model/train.py docstring; equals `kiln perplexity`"}
  for name, text, settings in (("sample", sample_text, [(512, 512), (256, 128)]),
                               ("heldout", heldout_text, [(512, 512), (1024, 1024), (256, 128)])):
    tids = tok.encode(text).ids  # with <bos>
    entries = []
    for ctx, stride in settings:
      p, scored, chunks = perplexity(ref, tids, ctx, stride, device)
      entries.append({"ctx": ctx, "stride": stride, "ppl": p, "scored_tokens": scored, "chunks": chunks})
      log(f"perplexity {name} ctx {ctx} stride {stride}: {p:.4f} over {scored} tokens ({chunks} chunks)")
    ppl[name] = {"tokens": len(tids), "runs": entries}
    if name == "sample":
      ppl[name]["ids"] = tids
  with open(os.path.join(args.goldens_out, "perplexity.json"), "w") as f:
    json.dump(ppl, f)
  report["perplexity"] = {k: v["runs"] for k, v in ppl.items() if isinstance(v, dict)}

  # greedy continuations (transformers generate, do_sample=False)
  prompts = ["The jury said", "It was a cold night, and", "In the spring of 1961,"]
  greedy = []
  for prompt in prompts:
    pids = encode(tok, prompt)
    with torch.no_grad():
      out = ref.generate(torch.tensor([pids], device=device), max_new_tokens=32, do_sample=False,
                         eos_token_id=EOS, pad_token_id=PAD)
    new = out[0, len(pids):].tolist()
    text = tok.decode(new, skip_special_tokens=True)
    greedy.append({"prompt": prompt, "prompt_ids": pids, "ids": new, "text": text})
    log(f"greedy: {prompt!r} -> {text!r}")
  with open(os.path.join(args.goldens_out, "greedy.json"), "w") as f:
    json.dump({"max_new_tokens": 32, "results": greedy}, f, indent=1)

  # samples for the model card (not goldens)
  samples = []
  for prompt in prompts:
    pids = encode(tok, prompt)
    torch.manual_seed(args.seed)
    with torch.no_grad():
      out = ref.generate(torch.tensor([pids], device=device), max_new_tokens=80, do_sample=True,
                         temperature=0.8, top_k=40, eos_token_id=EOS, pad_token_id=PAD)
    samples.append({"prompt": prompt, "text": tok.decode(out[0, len(pids):].tolist(), skip_special_tokens=True)})
    with torch.no_grad():
      out = ref.generate(torch.tensor([pids], device=device), max_new_tokens=80, do_sample=False,
                         eos_token_id=EOS, pad_token_id=PAD)
    samples.append({"prompt": prompt, "greedy80": tok.decode(out[0, len(pids):].tolist(), skip_special_tokens=True)})
  report["samples"] = samples
  for s in samples:
    log(s)
  report["total_seconds"] = time.time() - t_start
  with open(os.path.join(args.model_out, "training_report.json"), "w") as f:
    json.dump(report, f, indent=1)
  log(f"done in {report['total_seconds']:.0f}s")


if __name__ == "__main__":
  sys.exit(main())
