#!/usr/bin/env python3
"""A smaller model from a Gemma 4 checkpoint: its first N decoder layers, the same embeddings,
final norm, head and tokenizer (an untrained early-exit draft model for speculative decoding).

usage: scripts/truncate-layers.py SRC_DIR DST_DIR N

Reads SRC_DIR/model.safetensors (one file), writes DST_DIR/model.safetensors with layers 0..N-1
and every tensor outside the layers, a config.json with num_hidden_layers = N (layer_types and
per_layer_config cut to match), and copies the tokenizer and generation files. Pure Python.
"""
import json
import os
import re
import shutil
import struct
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    text = config.get("text_config", config)
    if not 1 <= n <= text["num_hidden_layers"]:
        sys.exit(f"N must be in [1, {text['num_hidden_layers']}], got {n}")
    if text.get("num_kv_shared_layers", 0):
        sys.exit("models whose layers share KV (num_kv_shared_layers > 0) are not supported")
    text["num_hidden_layers"] = n
    text["layer_types"] = text["layer_types"][:n]
    if "per_layer_config" in text:
        text["per_layer_config"] = {k: v for k, v in text["per_layer_config"].items() if int(k) < n}

    with open(os.path.join(src, "model.safetensors"), "rb") as f:
        header_size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_size))
        data = f.read()
    layer = re.compile(r"(^|\.)layers\.(\d+)\.")
    kept = {}
    offset = 0
    chunks = []
    for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0] if item[0] != "__metadata__" else -1):
        if name == "__metadata__":
            continue
        match = layer.search(name)
        if match and int(match.group(2)) >= n:
            continue
        begin, end = info["data_offsets"]
        chunks.append(data[begin:end])
        kept[name] = dict(info, data_offsets=[offset, offset + end - begin])
        offset += end - begin
    if "__metadata__" in header:
        kept["__metadata__"] = header["__metadata__"]
    encoded = json.dumps(kept, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)

    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for chunk in chunks:
            f.write(chunk)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    print(f"{dst}: {n} layers, {len(kept) - ('__metadata__' in kept)} tensors, {offset} bytes")


if __name__ == "__main__":
    main()
