#!/usr/bin/env python3
"""kiln's logits against llama.cpp's on the same GGUF files (scripts/llama_cpp_oracle.sh compare).

    /usr/bin/python3 tests/oracle/compare_logits.py DIR STEM...
    /usr/bin/python3 tests/oracle/compare_logits.py --goldens OUT.json DIR STEM...

DIR holds prompt_ids.txt, llama.STEM.npy and kiln.STEM.npy ([positions, vocab] float32) for
every STEM (e.g. brown-gemma4.q4_0). Prints one Markdown row per file:
  max |d|, mean |d|    over every logit, kiln minus llama.cpp
  rel                  max |d| / the largest |logit| llama.cpp gave
  argmax               positions where both pick the same token
  ppl                  perplexity of the prompt's next tokens under each (exp of the mean negative
                       log-likelihood of ids[1:]), i.e. what `kiln perplexity` computes
  quant. error         mean |llama.cpp(file) - llama.cpp(f32 of the same model)|: how far the
                       format itself moves the logits, the scale a wrong dequantization shows at

--goldens writes llama.cpp's side alone, small enough to commit (tests/oracle/
brown_llama_cpp_goldens.json): per file its perplexity and argmax per position, and for the f32
file the log-probability of every next token.
"""
import json
import sys
from pathlib import Path

import numpy as np


def perplexity(logits, ids):
    logits = logits.astype(np.float64)
    peak = logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(logits - peak).sum(axis=1)) + peak[:, 0]
    positions = np.arange(len(ids) - 1)
    log_probs = logits[positions, ids[1:]] - log_sum[:-1]
    return float(np.exp(-log_probs.mean()))


def write_goldens(path, directory, ids, stems):
    document = {"source": "llama.cpp 80fb11ac (node-llama-cpp@3.21.1 prebuilt CPU libllama), tests/oracle/llama_oracle.cpp "
                          "logits: one thread, flash attention off, f32 KV cache",
                "prompt": "tests/brown_model/loglik.json ids", "files": {}}
    for stem in stems:
        logits = np.load(directory / f"llama.{stem}.npy").astype(np.float64)
        entry = {"perplexity": round(perplexity(logits, ids), 5), "argmax": logits.argmax(axis=1).tolist()}
        if stem.endswith(".f32"):
            peak = logits.max(axis=1, keepdims=True)
            log_sum = np.log(np.exp(logits - peak).sum(axis=1)) + peak[:, 0]
            log_probs = logits[np.arange(len(ids) - 1), ids[1:]] - log_sum[:-1]
            entry["next_token_logprobs"] = [round(float(v), 5) for v in log_probs]
        document["files"][stem] = entry
    Path(path).write_text(json.dumps(document, separators=(",", ":")) + "\n")


def main():
    if sys.argv[1] == "--goldens":
        directory = Path(sys.argv[3])
        ids = np.array([int(x) for x in (directory / "prompt_ids.txt").read_text().strip().split(",")])
        write_goldens(sys.argv[2], directory, ids, sys.argv[4:])
        return
    directory = Path(sys.argv[1])
    ids = np.array([int(x) for x in (directory / "prompt_ids.txt").read_text().strip().split(",")])
    print(f"{len(ids)} positions\n")
    print("| file | max abs diff | mean abs diff | max diff / max logit | argmax agreement | ppl llama.cpp | ppl kiln | quant. error (llama.cpp vs its f32) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for stem in sys.argv[2:]:
        llama = np.load(directory / f"llama.{stem}.npy")
        model = stem.rsplit(".", 1)[0]
        reference = np.load(directory / f"llama.{model}.f32.npy")
        quant_error = float(np.abs(llama - reference).mean())
        kiln_path = directory / f"kiln.{stem}.npy"
        if not kiln_path.exists():
            print(f"| {stem} | kiln refused | | | | {perplexity(llama, ids):.3f} | | {quant_error:.4f} |")
            continue
        kiln = np.load(kiln_path)
        diff = np.abs(kiln.astype(np.float64) - llama)
        agreement = float((kiln.argmax(axis=1) == llama.argmax(axis=1)).mean())
        print(f"| {stem} | {diff.max():.4f} | {diff.mean():.5f} | {diff.max() / np.abs(llama).max():.2e} | "
              f"{100 * agreement:.1f}% | {perplexity(llama, ids):.3f} | {perplexity(kiln, ids):.3f} | {quant_error:.4f} |")


if __name__ == "__main__":
    main()
