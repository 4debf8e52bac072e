#!/usr/bin/env bash
# llama.cpp as the oracle for kiln's GGUF and block-format support (docs/gguf.md, "Against llama.cpp").
#
#   scripts/llama_cpp_oracle.sh prepare            fetch, build the oracle, write the GGUFs and llama.cpp's logits
#   scripts/llama_cpp_oracle.sh compare [KILN]     prepare, then kiln's logits on every file against llama.cpp's
#   scripts/llama_cpp_oracle.sh bench [KILN] [THREADS...]   decode tok/s of both on every file (default threads 1 2);
#                                                  BENCH_FILES="brown-gemma4.q4_0 ..." picks files
#   scripts/llama_cpp_oracle.sh goldens            prepare, then rewrite tests/oracle/brown_llama_cpp_goldens.json
#
# KILN is the kiln binary (default build/tools/kiln/kiln). Everything lands under
# ${KILN_ASSET_DIR:-$HOME/.cache/kiln-assets}/llama-oracle and is reused: a second run redoes only
# what is missing or older than its inputs.
#
# What prepare does:
#   1. npm pack node-llama-cpp@3.21.1 (llama.cpp source as a git bundle, commit 80fb11ac, for the
#      headers and convert_hf_to_gguf.py) and @node-llama-cpp/linux-x64@3.21.1 (the prebuilt CPU
#      libllama and ggml CPU backends of that commit); both tarballs' hashes are checked.
#   2. builds tests/oracle/llama_oracle.cpp against that libllama (not part of the CMake build).
#   3. converts models/brown-gemma4 with llama.cpp's converter (scripts/make_gguf_fixtures.py):
#      brown-gemma4.{f32,bf16}.gguf, and brown-gemma4-w512.f32.gguf, the same model widened to
#      whole 256-element rows so that K-quant mixes use K-quants (hidden 384 falls back to Q5_0 /
#      Q8_0 in nearly every tensor); quantizes with llama_model_quantize (llama-quantize's mixes):
#      brown-gemma4.{q8_0,q4_0,q4_k_m,q6_k}.gguf and brown-gemma4-w512.{q8_0,q4_0,q4_k_m,q6_k}.gguf.
#   4. llama.cpp's logits of every file on the 439 ids of tests/brown_model/loglik.json (one
#      thread, flash attention off, f32 KV cache): llama.<file>.npy.
# The ctest llama_cpp_oracle_parity (tests/oracle) reads these.
#
# Exit status: 0 done, 77 skipped (no npm, no network, no compiler), 1 a real failure.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${KILN_ASSET_DIR:-$HOME/.cache/kiln-assets}/llama-oracle"
VERSION=3.21.1
# sha256 of the npm tarballs (registry integrity is sha512; these pin the exact bytes used here).
MAIN_TGZ_SHA256=7a231d6bafa14142a1cbed9893d4ec5bc6041b2a5f5939a623accaab4203c11f
BINS_TGZ_SHA256=4b5b65a8b2611d8af94349b02d815c0f424a30a0a19aef2be5db25ecfef6730f
BUNDLE_SHA256=9336d8aab8f8e6a8919380f3641fe92e57b02fb55df1b6bd083b82491a6293b8
FORMATS_BROWN=(f32 bf16 q8_0 q4_0 q4_k_m q6_k)
FORMATS_WIDE=(f32 q8_0 q4_0 q4_k_m q6_k)

skip() { echo "llama_cpp_oracle: $*; skipping" >&2; exit 77; }
have() { command -v "$1" >/dev/null 2>&1; }

# Every GGUF this script writes, as "file-stem format" pairs.
all_files() {
  for f in "${FORMATS_BROWN[@]}"; do echo "brown-gemma4.$f"; done
  for f in "${FORMATS_WIDE[@]}"; do echo "brown-gemma4-w512.$f"; done
}

# fetch PACKAGE TARBALL-NAME SHA256 -> the tarball under $DEST/npm (packed once).
fetch() {
  local tgz="$DEST/npm/$2"
  if [ ! -f "$tgz" ]; then
    have npm || skip "npm not found"
    mkdir -p "$DEST/npm"
    (cd "$DEST/npm" && timeout 600 npm pack --silent --fetch-retries=1 --fetch-timeout=30000 "$1" >/dev/null 2>&1) ||
      skip "npm pack $1 failed (offline?)"
  fi
  local got
  got="$(sha256sum "$tgz" | cut -d' ' -f1)"
  if [ "$got" != "$3" ]; then
    rm -f "$tgz"
    echo "llama_cpp_oracle: $2 has sha256 $got, expected $3; removed" >&2
    exit 1
  fi
}

prepare_sources() {
  fetch "node-llama-cpp@$VERSION" "node-llama-cpp-$VERSION.tgz" "$MAIN_TGZ_SHA256"
  fetch "@node-llama-cpp/linux-x64@$VERSION" "node-llama-cpp-linux-x64-$VERSION.tgz" "$BINS_TGZ_SHA256"
  if [ ! -f "$DEST/llama.cpp/convert_hf_to_gguf.py" ]; then
    local work
    work="$(mktemp -d)"
    tar -xzf "$DEST/npm/node-llama-cpp-$VERSION.tgz" -C "$work" package/llama/gitRelease.bundle
    [ "$(sha256sum "$work/package/llama/gitRelease.bundle" | cut -d' ' -f1)" = "$BUNDLE_SHA256" ] ||
      { echo "llama_cpp_oracle: gitRelease.bundle hash mismatch" >&2; exit 1; }
    rm -rf "$DEST/llama.cpp"
    git clone -q "$work/package/llama/gitRelease.bundle" "$DEST/llama.cpp"
    rm -rf "$work"
  fi
  if [ ! -f "$DEST/lib/libllama.v0.4.0.so" ]; then
    local work
    work="$(mktemp -d)"
    tar -xzf "$DEST/npm/node-llama-cpp-linux-x64-$VERSION.tgz" -C "$work" package/bins/linux-x64
    rm -rf "$DEST/lib"
    mv "$work/package/bins/linux-x64" "$DEST/lib"
    rm -rf "$work"
  fi
}

build_oracle() {
  local source="$REPO/tests/oracle/llama_oracle.cpp" binary="$DEST/bin/llama_oracle"
  if [ ! -x "$binary" ] || [ "$source" -nt "$binary" ]; then
    have g++ || skip "g++ not found"
    mkdir -p "$DEST/bin"
    # The shared libraries' names are the package's (libllama.v0.4.0.so); rpath finds them and
    # the oracle loads the CPU backend variants from the same directory.
    g++ -std=c++20 -O2 -Wall -Wextra -I "$DEST/llama.cpp/include" -I "$DEST/llama.cpp/ggml/include" "$source" \
        -o "$binary.tmp" -L "$DEST/lib" -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so \
        -Wl,-rpath,"$DEST/lib" -ldl
    mv "$binary.tmp" "$binary"
  fi
}

# newer TARGET INPUT... -> 0 when TARGET exists and is newer than every input.
newer() {
  local target="$1"
  shift
  [ -f "$target" ] || return 1
  for input in "$@"; do [ "$target" -nt "$input" ] || return 1; done
}

prepare_models() {
  local out="$DEST/brown" convert="$REPO/scripts/make_gguf_fixtures.py"
  mkdir -p "$out"
  /usr/bin/python3 -c "import numpy, yaml" 2>/dev/null || skip "/usr/bin/python3 lacks numpy or yaml (python3-numpy, python3-yaml)"
  local weights="$REPO/models/brown-gemma4/model.safetensors"
  if ! newer "$out/brown-gemma4.f32.gguf" "$weights" "$convert" || ! newer "$out/brown-gemma4.bf16.gguf" "$weights" "$convert"; then
    /usr/bin/python3 "$convert" --llama-cpp "$DEST/llama.cpp" --checkpoint "$REPO/models/brown-gemma4" \
      --name brown-gemma4 --outtypes f32 bf16 --out "$out" >/dev/null
  fi
  if ! newer "$out/brown-gemma4-w512.f32.gguf" "$weights" "$convert"; then
    /usr/bin/python3 "$convert" --llama-cpp "$DEST/llama.cpp" --checkpoint "$REPO/models/brown-gemma4" \
      --name brown-gemma4-w512 --widen-for-k-quants --outtypes f32 --out "$out" >/dev/null
  fi
  for stem in brown-gemma4 brown-gemma4-w512; do
    for type in q8_0 q4_0 q4_k_m q6_k; do
      local target="$out/$stem.$type.gguf"
      if ! newer "$target" "$out/$stem.f32.gguf" "$DEST/bin/llama_oracle"; then
        "$DEST/bin/llama_oracle" quantize "$out/$stem.f32.gguf" "$target.partial.$$" "$type" --threads 2
        mv "$target.partial.$$" "$target"
      fi
    done
  done
  # The prompt: the held-out passage's ids (tests/brown_model/loglik.json), longer than the
  # sliding window (128).
  /usr/bin/python3 -c "import json, sys; print(','.join(map(str, json.load(open(sys.argv[1]))['ids'])))" \
    "$REPO/tests/brown_model/loglik.json" > "$out/prompt_ids.txt.tmp"
  mv "$out/prompt_ids.txt.tmp" "$out/prompt_ids.txt"
  local ids
  ids="$(cat "$out/prompt_ids.txt")"
  while read -r file; do
    local target="$out/llama.$file.npy"
    if ! newer "$target" "$out/$file.gguf" "$DEST/bin/llama_oracle"; then
      "$DEST/bin/llama_oracle" logits "$out/$file.gguf" --tokens "$ids" --out "$target.partial.$$.npy" --threads 1 2>/dev/null
      mv "$target.partial.$$.npy" "$target"
    fi
  done < <(all_files)
}

prepare() {
  have git || skip "git not found"
  mkdir -p "$DEST" 2>/dev/null || skip "cannot create $DEST"
  # Build directories' ctest runs share the cache: one writer at a time.
  exec 9>"$DEST/.lock"
  have flock && flock 9
  prepare_sources
  build_oracle
  prepare_models
  echo "llama_cpp_oracle: ready in $DEST"
}

compare() {
  local kiln="${1:-$REPO/build/tools/kiln/kiln}" out="$DEST/brown"
  [ -x "$kiln" ] || { echo "llama_cpp_oracle: no kiln binary at $kiln" >&2; exit 1; }
  local ids
  ids="$(cat "$out/prompt_ids.txt")"
  while read -r file; do
    if ! "$kiln" logits "$out/$file.gguf" --tokens "$ids" --out "$out/kiln.$file.npy" --threads 1 2>"$out/kiln.$file.log"; then
      echo "kiln refused $file.gguf: $(tail -1 "$out/kiln.$file.log")"
      rm -f "$out/kiln.$file.npy"
    fi
  done < <(all_files)
  /usr/bin/python3 "$REPO/tests/oracle/compare_logits.py" "$out" $(all_files)
  # The file's tokenizer (tokenizer.ggml.*, llama.cpp's gemma4 BPE) on the held-out text.
  local text="$REPO/tests/brown_model/heldout_sample.txt" kiln_ids llama_ids
  kiln_ids="$("$kiln" tokenize "$out/brown-gemma4.f32.gguf" - --ids-only < "$text" | tr ' ' ',' | tr -d '\n')"
  llama_ids="$("$DEST/bin/llama_oracle" tokenize "$out/brown-gemma4.f32.gguf" "$text" | tr -d '\n')"
  if [ "$kiln_ids" = "$llama_ids" ]; then
    echo; echo "tokenization of heldout_sample.txt: kiln = llama.cpp ($(echo "$llama_ids" | tr ',' '\n' | wc -l) ids)"
  else
    echo; echo "tokenization of heldout_sample.txt: kiln and llama.cpp DIFFER"
    return 1
  fi
}

# cpu_seconds CMD... -> user + system CPU seconds the command used (its output discarded).
cpu_seconds() {
  local report="$DEST/.cpu_seconds.$$"
  /usr/bin/time -o "$report" -f 'cpu %U %S' "$@" >/dev/null 2>&1 || true
  awk '/^cpu / {print $2 + $3}' "$report" 2>/dev/null || echo 0
  rm -f "$report"
}

# Both engines as `kiln bench --parallel 1` measures: a 128-token prompt, then 64 greedy
# single-token steps; one warm-up and 5 runs; the median rate (wall clock). The machines these run
# on are shared, so at one thread it also reports a rate from CPU time, which waiting for a busy
# core does not inflate: the CPU seconds of the same command with 65 and with 2 generated tokens
# differ by exactly 6 x 63 decode steps (model load and prefill cancel).
bench() {
  local kiln="${1:-$REPO/build/tools/kiln/kiln}" out="$DEST/brown"
  shift || true
  local threads=("$@")
  [ ${#threads[@]} -gt 0 ] || threads=(1 2)
  [ -x "$kiln" ] || { echo "llama_cpp_oracle: no kiln binary at $kiln" >&2; exit 1; }
  [ -x /usr/bin/time ] || echo "llama_cpp_oracle: no /usr/bin/time; CPU-time rates left out" >&2
  printf '| %-24s | %7s | %11s | %11s | %15s | %15s | %s |\n' file threads "kiln t/s" "llama t/s" "kiln t/s (cpu)" \
    "llama t/s (cpu)" "load (1 min)"
  printf '|%s|\n' "---|--:|--:|--:|--:|--:|--:"
  while read -r file; do
    [ -f "$out/$file.gguf" ] || continue
    for t in "${threads[@]}"; do
      local load k l kc="" lc=""
      load="$(cut -d' ' -f1 /proc/loadavg)"
      local kiln_cmd=("$kiln" bench "$out/$file.gguf" --parallel 1 -p 128 -r 5 --threads "$t")
      local llama_cmd=("$DEST/bin/llama_oracle" bench "$out/$file.gguf" -p 128 -r 5 --threads "$t")
      k="$("${kiln_cmd[@]}" -g 65 2>/dev/null | awk -F'|' '$2 ~ /^ *1 *$/ {gsub(/ /, "", $5); print $5}')" || k=""
      l="$("${llama_cmd[@]}" -g 65 2>/dev/null | sed -n 's/.*tg65 \([0-9.]*\) t\/s.*/\1/p')"
      if [ "$t" = 1 ] && [ -x /usr/bin/time ] && [ -n "$k" ]; then
        kc="$(awk -v a="$(cpu_seconds "${kiln_cmd[@]}" -g 65)" -v b="$(cpu_seconds "${kiln_cmd[@]}" -g 2)" \
              'BEGIN {if (a > b) printf "%.1f", 378 / (a - b)}')"
        lc="$(awk -v a="$(cpu_seconds "${llama_cmd[@]}" -g 65)" -v b="$(cpu_seconds "${llama_cmd[@]}" -g 2)" \
              'BEGIN {if (a > b) printf "%.1f", 378 / (a - b)}')"
      fi
      printf '| %-24s | %7s | %11s | %11s | %15s | %15s | %s |\n' "$file" "$t" "${k:-refused}" "${l:-failed}" "$kc" "$lc" "$load"
    done
  done < <(if [ -n "${BENCH_FILES:-}" ]; then printf '%s\n' $BENCH_FILES; else all_files; fi)
}

case "${1:-prepare}" in
  prepare) prepare ;;
  compare) prepare >/dev/null; compare "${2:-}" ;;
  bench) prepare >/dev/null; shift; bench "$@" ;;
  goldens)
    prepare >/dev/null
    /usr/bin/python3 "$REPO/tests/oracle/compare_logits.py" --goldens "$REPO/tests/oracle/brown_llama_cpp_goldens.json" \
      "$DEST/brown" $(all_files)
    ;;
  *) echo "usage: $0 prepare | compare [KILN] | bench [KILN] [THREADS...] | goldens" >&2; exit 2 ;;
esac
