#!/usr/bin/env python3
"""Writes GGUF copies of the Gemma 4 test fixtures with llama.cpp's own converter.

    /usr/bin/python3 scripts/make_gguf_fixtures.py [--llama-cpp DIR] [--out tests/fixtures/gguf]

The oracle for kiln's GGUF loader is llama.cpp itself: convert_hf_to_gguf.py from the llama.cpp
source in the node-llama-cpp@3.21.1 npm package (llama/gitRelease.bundle, commit 80fb11ac). With
--llama-cpp the script uses an existing clone; otherwise it fetches the package with npm pack and
clones the bundle into a temporary directory.

The converter imports torch and transformers, but for a safetensors checkpoint it needs only
numpy. This script runs it unmodified under /usr/bin/python3 (python3-numpy, python3-yaml) with
small stand-in modules written to a temporary directory:
  - torch: a numpy-backed Tensor with the handful of operations the converter's eager
    (--no-lazy) path uses on Gemma 4 weights (view, reshape, to, slicing, cat, numpy);
  - transformers: AutoConfig that fails (the converter then reads config.json itself) and an
    AutoTokenizer that reads tokenizer.json (vocab, added tokens, special tokens);
  - tqdm: a silent progress bar.

The fixtures have a 512-token vocabulary and no tokenizer; the converter needs one (its vocab
becomes tokenizer.ggml.*, and its size truncates token_embd). The script writes a small Gemma-4-style
byte-fallback BPE tokenizer.json with exactly 512 tokens: <pad> <eos> <bos> <unk> <mask>, the
turn markers, 256 byte tokens <0x00>..<0xFF>, then single characters and merges up to 512, plus
a tokenizer_config.json with a small chat template. The fixtures' config.json is passed through
unchanged except for two keys the converter insists on (it reads num_kv_shared_layers and
moe_intermediate_size without defaults) and the 12B's architecture name, which the converter
knows only as Gemma4ForCausalLM (identical text decoder).

Outputs (tests/fixtures/gguf, about 4.8 MB):
  V.f32.gguf                   every variant V in g31b e2b e4b g12b a26b
  g31b.f16.gguf                f16 (norms, scalars and rope_freqs stay f32, as always)
  g31b.q8_0.gguf               Q8_0 where ne[0] is a multiple of 32: only attn_output (ne[0] =
                               64 or 128); hidden 48 is not, so llama.cpp keeps the rest F16/F32
  g31b-f16-split-0000N-of-00003.gguf  g31b f16 split in three (--split-max-tensors 48)

With --assistants e2b/mtp_copy_centroid it converts that fixture MTP assistant (llama.cpp's
Gemma4AssistantModel, general.architecture gemma4-assistant; the converter drops the centroid
head) to OUT/e2b-mtp_copy_centroid.{f32,q8_0}.gguf, the files tests/engine/mtp_gguf_test.cpp
reads.

With --checkpoint DIR it converts one checkpoint directory that carries its own tokenizer.json
(models/brown-gemma4, for scripts/llama_cpp_oracle.sh) instead of the fixtures, to
OUT/NAME.TYPE.gguf for each --outtypes entry (default f32 bf16; NAME defaults to the directory's
name).

--widen-for-k-quants (with --checkpoint) first rewrites the checkpoint, in f32, into an equivalent
wider model whose every matrix row is a whole number of 256-element K-quant blocks, so that
llama.cpp's Q4_K_M and Q6_K mixes really use Q4_K and Q6_K: on models/brown-gemma4 (hidden 384)
they fall back to Q5_0 and Q8_0 for every tensor whose rows are not, i.e. nearly all of them.
See widen_for_k_quants for why the wider model computes the same logits.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ["g31b", "e2b", "e4b", "g12b", "a26b"]
BUNDLE_SHA256 = "9336d8aab8f8e6a8919380f3641fe92e57b02fb55df1b6bd083b82491a6293b8"

TORCH_STANDIN = r'''
# Stand-in for the parts of torch llama.cpp's converter touches on its eager path.
import numpy as _np


class dtype:
    def __init__(self, name, np_type, itemsize):
        self.name, self.np_type, self.itemsize = name, np_type, itemsize
        self.is_floating_point = name.startswith(("float", "bfloat"))

    def __repr__(self):
        return "torch." + self.name


float64 = dtype("float64", _np.float64, 8)
float32 = dtype("float32", _np.float32, 4)
float16 = dtype("float16", _np.float16, 2)
bfloat16 = dtype("bfloat16", None, 2)
int64 = dtype("int64", _np.int64, 8)
int32 = dtype("int32", _np.int32, 4)
int16 = dtype("int16", _np.int16, 2)
int8 = dtype("int8", _np.int8, 1)
uint8 = dtype("uint8", _np.uint8, 1)
bool = dtype("bool", _np.bool_, 1)
float8_e4m3fn = dtype("float8_e4m3fn", None, 1)
float8_e5m2 = dtype("float8_e5m2", None, 1)
_BY_NP = {_np.dtype(d.np_type): d for d in (float64, float32, float16, int64, int32, int16, int8, uint8, bool)}


class Size(tuple):
    pass


def _dtype_of(array):
    return _BY_NP[array.dtype]


class Tensor:
    def __init__(self, array, dt=None):
        self._a = array
        self.dtype = dt if dt is not None else _dtype_of(array)

    @property
    def shape(self):
        return Size(self._a.shape)

    def dim(self):
        return self._a.ndim

    @property
    def ndim(self):
        return self._a.ndim

    def numel(self):
        return int(self._a.size)

    def size(self, i=None):
        return self.shape if i is None else self._a.shape[i]

    def view(self, *args):
        if len(args) == 1 and isinstance(args[0], dtype):
            target = args[0]
            if target is bfloat16:
                return Tensor(self._a.view(_np.uint16), bfloat16)
            return Tensor(self._a.view(target.np_type))
        return self.reshape(*args)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Tensor(self._a.reshape(shape), self.dtype)

    def to(self, target=None, **kwargs):
        target = kwargs.get("dtype", target)
        if not isinstance(target, dtype) or target is self.dtype:
            return self
        a = self._a
        if self.dtype is bfloat16:
            a = (a.astype(_np.uint32) << 16).view(_np.float32)
        if target is bfloat16:
            bits = a.astype(_np.float32).view(_np.uint32)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
            return Tensor(bits.astype(_np.uint16), bfloat16)
        return Tensor(a.astype(target.np_type))

    def float(self):
        return self.to(float32)

    def numpy(self):
        if self.dtype is bfloat16:
            raise TypeError("bfloat16 has no numpy type")
        return self._a

    def contiguous(self):
        return Tensor(_np.ascontiguousarray(self._a), self.dtype)

    def squeeze(self, *dims):
        return Tensor(self._a.squeeze(*dims), self.dtype)

    def unsqueeze(self, d):
        return Tensor(_np.expand_dims(self._a, d), self.dtype)

    def transpose(self, a, b):
        return Tensor(_np.swapaxes(self._a, a, b), self.dtype)

    def permute(self, *dims):
        return Tensor(self._a.transpose(dims), self.dtype)

    def sum(self, *args, **kwargs):
        return Tensor(_np.asarray(self._a.sum(*args, **kwargs)))

    def item(self):
        return self._a.item()

    def __float__(self):
        return float(self._a)

    def __getitem__(self, key):
        return Tensor(self._a[key], self.dtype)

    def __len__(self):
        return len(self._a)

    def _binary(self, other, op):
        b = other._a if isinstance(other, Tensor) else other
        return Tensor(_np.asarray(op(self._a, b)))

    def __add__(self, o): return self._binary(o, _np.add)
    def __radd__(self, o): return self._binary(o, _np.add)
    def __sub__(self, o): return self._binary(o, _np.subtract)
    def __mul__(self, o): return self._binary(o, _np.multiply)
    def __rmul__(self, o): return self._binary(o, _np.multiply)
    def __truediv__(self, o): return self._binary(o, _np.divide)


def from_numpy(array):
    return Tensor(array)


def tensor(values, dtype=None):
    a = _np.array(values, dtype=dtype.np_type if dtype is not None else None)
    return Tensor(a)


def empty(size=(), dtype=float32, device=None):
    return Tensor(_np.empty(size, dtype=(dtype.np_type or _np.uint16)), dtype)


def cat(tensors, dim=0):
    return Tensor(_np.concatenate([t._a for t in tensors], axis=dim))


def stack(tensors, dim=0):
    return Tensor(_np.stack([t._a for t in tensors], axis=dim))


def arange(*args, dtype=None):
    return Tensor(_np.arange(*args, dtype=dtype.np_type if dtype is not None else None))


def load(*args, **kwargs):
    raise NotImplementedError("stand-in torch cannot read pickled checkpoints")


class _NoGrad:
    def __enter__(self): return self
    def __exit__(self, *a): return False
    def __call__(self, f): return f


def no_grad():
    return _NoGrad()


def inference_mode(mode=True):
    return _NoGrad()
'''

TRANSFORMERS_STANDIN = r'''
# Stand-in for the two transformers entry points llama.cpp's converter uses.
import json
from pathlib import Path


class AutoConfig:
    @staticmethod
    def from_pretrained(*args, **kwargs):
        raise OSError("stand-in transformers: read config.json directly")


class _FastTokenizer:
    is_fast = True

    def __init__(self, directory):
        doc = json.loads((Path(directory) / "tokenizer.json").read_text(encoding="utf-8"))
        self._vocab = dict(doc["model"]["vocab"])
        self.vocab_size = len(self._vocab)
        self._added = {t["content"]: t["id"] for t in doc.get("added_tokens", [])}
        self._special = {t["content"]: t["id"] for t in doc.get("added_tokens", []) if t.get("special")}
        self.all_special_tokens = list(self._special)
        self.all_special_ids = list(self._special.values())

    def get_vocab(self):
        merged = dict(self._vocab)
        merged.update(self._added)
        return merged

    def get_added_vocab(self):
        return dict(self._added)


class AutoTokenizer:
    @staticmethod
    def from_pretrained(directory, **kwargs):
        return _FastTokenizer(directory)
'''

TQDM_STANDIN = r'''
# Stand-in for tqdm: the converter's progress bar, silent.
class tqdm:
    def __init__(self, *args, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def reset(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False
'''

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|turn>{{ message['role'] }}\n"
    "{{ message['content'] | trim }}<turn|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)


def tiny_tokenizer(vocab_size=512):
    """A Gemma-4-style BPE tokenizer.json (byte fallback, "▁" for spaces) of exactly vocab_size ids."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for c in "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()\n":
        if c not in vocab:
            vocab[c] = len(vocab)
    merges = []
    letters = "etaoinshrdlucmfwypvbgk"
    pairs = [("▁", c) for c in letters] + [(a, b) for a in letters for b in letters]
    for a, b in pairs:
        if len(vocab) >= vocab_size:
            break
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append([a, b])
    assert len(vocab) == vocab_size, len(vocab)
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in specials]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def fetch_llama_cpp(work):
    subprocess.run(["npm", "pack", "--silent", "node-llama-cpp@3.21.1"], cwd=work, check=True)
    subprocess.run(["tar", "-xzf", "node-llama-cpp-3.21.1.tgz", "package/llama/gitRelease.bundle"], cwd=work, check=True)
    bundle = work / "package/llama/gitRelease.bundle"
    digest = subprocess.run(["sha256sum", str(bundle)], capture_output=True, text=True, check=True).stdout.split()[0]
    if digest != BUNDLE_SHA256:
        sys.exit(f"gitRelease.bundle has sha256 {digest}, expected {BUNDLE_SHA256}")
    subprocess.run(["git", "clone", "-q", str(bundle), str(work / "llamacpp")], check=True)
    return work / "llamacpp"


def prepare_source(variant, dest):
    """The fixture as the converter wants it: config, weights, a tokenizer."""
    src = REPO / "tests/fixtures" / variant
    dest.mkdir(parents=True)
    shutil.copy(src / "model.safetensors", dest / "model.safetensors")
    shutil.copy(src / "generation_config.json", dest / "generation_config.json")
    config = json.loads((src / "config.json").read_text())
    config.setdefault("num_kv_shared_layers", 0)
    config.setdefault("moe_intermediate_size", None)
    if config.get("architectures") == ["Gemma4UnifiedForCausalLM"]:
        # The converter registers the 12B under its multimodal class only; its text decoder is
        # Gemma4ForCausalLM's (docs/gemma4.md section 1), which the converter knows.
        config["architectures"] = ["Gemma4ForCausalLM"]
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    (dest / "tokenizer.json").write_text(json.dumps(tiny_tokenizer(config["vocab_size"]), ensure_ascii=False))
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "add_bos_token": True, "chat_template": CHAT_TEMPLATE}))


def prepare_assistant(target, assistant, dest):
    """A fixture's MTP assistant as the converter wants it: its config (plus the key the converter
    reads without a default), weights, and the target's tokenizer."""
    src = REPO / "tests/fixtures" / target / assistant
    dest.mkdir(parents=True)
    shutil.copy(src / "model.safetensors", dest / "model.safetensors")
    config = json.loads((src / "config.json").read_text())
    config["text_config"].setdefault("moe_intermediate_size", None)
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    (dest / "tokenizer.json").write_text(json.dumps(tiny_tokenizer(config["text_config"]["vocab_size"]), ensure_ascii=False))
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": True}))


def prepare_checkpoint(checkpoint, dest):
    """A checkpoint with its own tokenizer, plus the two keys the converter reads without defaults."""
    dest.mkdir(parents=True)
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
                 "special_tokens_map.json"):
        if (checkpoint / name).exists():
            shutil.copy(checkpoint / name, dest / name)
    config = json.loads((checkpoint / "config.json").read_text())
    config.setdefault("num_kv_shared_layers", 0)
    config.setdefault("moe_intermediate_size", None)
    (dest / "config.json").write_text(json.dumps(config, indent=2))


def read_safetensors(path):
    """name -> float32 array; the header's dtype for BF16, F16 and F32 tensors."""
    import numpy as np
    data = path.read_bytes()
    header_length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_length])
    base = 8 + header_length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = data[base + begin:base + end]
        if entry["dtype"] == "BF16":
            array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif entry["dtype"] == "F16":
            array = np.frombuffer(raw, np.float16).astype(np.float32)
        elif entry["dtype"] == "F32":
            array = np.frombuffer(raw, np.float32).copy()
        else:
            raise SystemExit(f"{path}: {name} has dtype {entry['dtype']}; expected BF16, F16 or F32")
        tensors[name] = array.reshape(entry["shape"])
    return tensors


def write_safetensors(path, tensors):
    import numpy as np
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(header).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    with open(path, "wb") as out:
        out.write(len(encoded).to_bytes(8, "little"))
        out.write(encoded)
        for blob in blobs:
            out.write(blob)


def round_up(value, multiple):
    return (value + multiple - 1) // multiple * multiple


def widen_for_k_quants(directory, block=256):
    """Pads a dense Gemma 4 text checkpoint (no PLE, no MoE, no KV sharing) in place so that the
    hidden size, the MLP width and every o_proj input are multiples of `block`, keeping its logits.

    Why the logits stay the same (up to float rounding and the norms' epsilon):
      - the residual stream gets zero components: every matrix writing it (o_proj, down_proj) gets
        zero rows, every hidden-sized norm weight is zero there;
      - an RMSNorm over the wider hidden sees the same sum of squares divided by more elements, so
        its output is sqrt(new/old) too large: the norm weights are multiplied by sqrt(old/new);
      - Gemma multiplies embeddings by sqrt(hidden): the embedding matrix is multiplied by
        sqrt(old/new); the same (tied) matrix then scales the logits by sqrt(old/new), and the final
        norm's sqrt(new/old) cancels it, so `norm.weight` stays as it is;
      - MLP units added are zero rows of gate/up and zero columns of down: GELU(0) * 0 = 0;
      - query heads are added per KV group (zero q_proj rows, zero o_proj columns), at the end of
        each group so that every original head keeps its KV head; a zero query attends uniformly
        but its output meets only zero o_proj columns. Attention is per head, so head_dim, the
        KV heads, RoPE and the q/k norms are untouched.
    """
    import numpy as np
    config = json.loads((directory / "config.json").read_text())
    if config.get("hidden_size_per_layer_input") or config.get("enable_moe_block") or config.get("num_kv_shared_layers"):
        raise SystemExit("--widen-for-k-quants handles dense models without per-layer inputs or KV sharing only")
    tensors = read_safetensors(directory / "model.safetensors")
    hidden, intermediate, heads = config["hidden_size"], config["intermediate_size"], config["num_attention_heads"]
    new_hidden = round_up(hidden, block)
    new_intermediate = round_up(intermediate, block)
    layer_config = config.get("per_layer_config", {})

    def kv_heads(layer):
        return layer_config.get(str(layer), {}).get("num_key_value_heads", config["num_key_value_heads"])

    def head_dim(layer):
        return layer_config.get(str(layer), {}).get("head_dim", config["head_dim"])

    # The smallest head count, a multiple of every layer's KV head count, whose o_proj inputs
    # (heads * head_dim) are whole blocks in every layer.
    layers = range(config["num_hidden_layers"])
    new_heads = heads
    while any(new_heads % kv_heads(i) or (new_heads * head_dim(i)) % block for i in layers):
        new_heads += 1
    scale = float(np.sqrt(hidden / new_hidden))

    def pad(array, shape):
        out = np.zeros(shape, np.float32)
        out[tuple(slice(0, n) for n in array.shape)] = array
        return out

    def spread_heads(array, layer, axis):
        """Heads along `axis` regrouped: each KV group's heads, then its added zero heads."""
        d, groups = head_dim(layer), kv_heads(layer)
        old_per_group, new_per_group = heads // groups, new_heads // groups
        moved = np.moveaxis(array, axis, 0)
        grouped = moved.reshape(groups, old_per_group, d, *moved.shape[1:])
        out = np.zeros((groups, new_per_group, d, *moved.shape[1:]), np.float32)
        out[:, :old_per_group] = grouped
        return np.moveaxis(out.reshape(new_heads * d, *moved.shape[1:]), 0, axis)

    widened = {}
    for name, array in tensors.items():
        parts = name.split(".")
        layer = int(parts[parts.index("layers") + 1]) if "layers" in parts else None
        if name.endswith("embed_tokens.weight"):
            widened[name] = pad(array, (array.shape[0], new_hidden)) * scale
        elif name.endswith("model.norm.weight"):
            widened[name] = pad(array, (new_hidden,))
        elif name.endswith("layernorm.weight"):
            widened[name] = pad(array, (new_hidden,)) * scale
        elif name.endswith("q_proj.weight"):
            widened[name] = pad(spread_heads(array, layer, 0), (new_heads * head_dim(layer), new_hidden))
        elif name.endswith(("k_proj.weight", "v_proj.weight")):
            widened[name] = pad(array, (array.shape[0], new_hidden))
        elif name.endswith("o_proj.weight"):
            widened[name] = pad(spread_heads(array, layer, 1), (new_hidden, new_heads * head_dim(layer)))
        elif name.endswith(("gate_proj.weight", "up_proj.weight")):
            widened[name] = pad(array, (new_intermediate, new_hidden))
        elif name.endswith("down_proj.weight"):
            widened[name] = pad(array, (new_hidden, new_intermediate))
        elif name.endswith(("q_norm.weight", "k_norm.weight", "layer_scalar")):
            widened[name] = array
        else:
            raise SystemExit(f"--widen-for-k-quants does not know how to widen {name}")
    write_safetensors(directory / "model.safetensors", widened)
    config.update(hidden_size=new_hidden, intermediate_size=new_intermediate, num_attention_heads=new_heads, dtype="float32")
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    print(f"widened: hidden {hidden} -> {new_hidden}, intermediate {intermediate} -> {new_intermediate}, "
          f"heads {heads} -> {new_heads}")


def write_standins(standins):
    (standins / "torch").mkdir(parents=True)
    (standins / "torch/__init__.py").write_text(TORCH_STANDIN)
    (standins / "transformers").mkdir()
    (standins / "transformers/__init__.py").write_text(TRANSFORMERS_STANDIN)
    (standins / "tqdm").mkdir()
    (standins / "tqdm/__init__.py").write_text(TQDM_STANDIN)


def convert(llama_cpp, standins, source, outfile, outtype, extra=()):
    env = dict(os.environ, PYTHONPATH=str(standins), NO_LOCAL_GGUF="")
    env.pop("NO_LOCAL_GGUF")
    cmd = ["/usr/bin/python3", str(llama_cpp / "convert_hf_to_gguf.py"), str(source), "--outfile", str(outfile),
           "--outtype", outtype, "--no-lazy", *extra]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"converter failed for {source.name} ({outtype})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-cpp", type=Path, help="an existing llama.cpp clone (default: fetch the bundle)")
    parser.add_argument("--out", type=Path, default=REPO / "tests/fixtures/gguf")
    parser.add_argument("--variants", nargs="*", default=VARIANTS)
    parser.add_argument("--checkpoint", type=Path, help="convert this checkpoint directory (own tokenizer) instead")
    parser.add_argument("--name", help="output name stem with --checkpoint (default: its directory name)")
    parser.add_argument("--outtypes", nargs="*", default=["f32", "bf16"], help="converter --outtype values with --checkpoint")
    parser.add_argument("--assistants", nargs="*", metavar="TARGET/ASSISTANT",
                        help="convert these fixture MTP assistants (e.g. e2b/mtp_copy_centroid) to OUT/TARGET-ASSISTANT.f32.gguf instead")
    parser.add_argument("--widen-for-k-quants", action="store_true",
                        help="with --checkpoint: convert an equivalent model whose rows are whole 256-element blocks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        llama_cpp = args.llama_cpp or fetch_llama_cpp(work)
        standins = work / "standins"
        write_standins(standins)
        args.out.mkdir(parents=True, exist_ok=True)
        if args.assistants:
            for entry in args.assistants:
                target, assistant = entry.split("/")
                source = work / "src" / f"{target}-{assistant}"
                prepare_assistant(target, assistant, source)
                for outtype in ("f32", "q8_0"):
                    convert(llama_cpp, standins, source, args.out / f"{target}-{assistant}.{outtype}.gguf", outtype)
                    print(f"{target}-{assistant}.{outtype}.gguf")
            return
        if args.checkpoint:
            source = work / "src" / "checkpoint"
            prepare_checkpoint(args.checkpoint.resolve(), source)
            if args.widen_for_k_quants:
                widen_for_k_quants(source)
            name = args.name or args.checkpoint.resolve().name
            for outtype in args.outtypes:
                # Written beside the target and renamed, so an interrupted run leaves no partial file.
                target = args.out / f"{name}.{outtype}.gguf"
                partial = args.out / f".{name}.{outtype}.gguf.partial"
                convert(llama_cpp, standins, source, partial, outtype)
                partial.replace(target)
                print(target.name)
            return
        for variant in args.variants:
            source = work / "src" / variant
            prepare_source(variant, source)
            convert(llama_cpp, standins, source, args.out / f"{variant}.f32.gguf", "f32")
            print(f"{variant}.f32.gguf")
            if variant == "g31b":
                for outtype in ("f16", "q8_0"):
                    convert(llama_cpp, standins, source, args.out / f"g31b.{outtype}.gguf", outtype)
                    print(f"g31b.{outtype}.gguf")
                split_dir = work / "split"
                split_dir.mkdir()
                convert(llama_cpp, standins, source, split_dir / "g31b-f16-split.gguf", "f16", ["--split-max-tensors", "48"])
                for shard in sorted(split_dir.iterdir()):
                    shutil.copy(shard, args.out / shard.name)
                    print(shard.name)


if __name__ == "__main__":
    main()
