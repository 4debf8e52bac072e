#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer on) and runs each for a while over
# its seed corpus. Usage: scripts/fuzz.sh [seconds per target, default 60]
# Crashing inputs are written to build-fuzz/. (The ordinary test suite replays the same corpora
# without libFuzzer.)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
CXX=clang++ CC=clang cmake -S . -B build-fuzz -G Ninja -DKILN_FUZZ=ON -DKILN_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=$(ninja -C build-fuzz -t targets all | grep -o '^fuzz_[a-z0-9_]*:' | tr -d ':' | grep -v replay | sort -u)
ninja -C build-fuzz $targets
for target in $targets; do
  binary=$(find build-fuzz -name "$target" -type f -perm -u+x | head -1)
  case "$target" in
    fuzz_artifact_reader) corpus=tests/artifact/fuzz_corpus ;;
    fuzz_gbnf|fuzz_regex|fuzz_json_schema) corpus=tests/constraint/fuzz_corpus/${target#fuzz_} ;;
    fuzz_request) corpus=tests/server/fuzz_corpus ;;
    fuzz_gemma4_output) corpus=tests/server/fuzz_corpus_gemma4_output ;;
    fuzz_gguf_reader|fuzz_safetensors_header|fuzz_config_json) corpus=tests/io/fuzz_corpus/${target#fuzz_} ;;
    *) corpus=tests/tokenizer/fuzz_corpus/${target#fuzz_} ;;
  esac
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  echo "== $target for ${seconds}s over $corpus"
  (cd "$work" && "$OLDPWD/$binary" -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=4096 -artifact_prefix="$OLDPWD/build-fuzz/" .)
  rm -rf "$work"
done
