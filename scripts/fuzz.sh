#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer on) and runs each for a while over
# its seed corpus. Usage: scripts/fuzz.sh [seconds per target, default 60]
# (The ordinary test suite replays the same corpora without libFuzzer.)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
CXX=clang++ CC=clang cmake -S . -B build-fuzz -G Ninja -DKILN_FUZZ=ON -DKILN_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=$(ninja -C build-fuzz -t targets all | grep -o '^fuzz_[a-z_]*:' | tr -d ':' | grep -v replay | sort -u)
ninja -C build-fuzz $targets
for target in $targets; do
  binary=$(find build-fuzz -name "$target" -type f -perm -u+x | head -1)
  corpus=$(dirname "$(grep -rl "$target.cpp" tests --include=CMakeLists.txt | head -1)")/fuzz_corpus
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  echo "== $target for ${seconds}s over $corpus"
  "$binary" -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=4096 "$work"
  rm -rf "$work"
done
