#!/usr/bin/env bash
# Runs every libFuzzer target (or the ones named) for a while and grows the kept corpora from
# what it finds. Not part of the main CI: a run of all targets at the default takes about an hour.
#
#   scripts/fuzz.sh                      # every target, 300 s each
#   scripts/fuzz.sh 20                   # every target, 20 s each (a smoke run)
#   scripts/fuzz.sh 600 fuzz_tokenizer_json fuzz_chat_template
#   scripts/fuzz.sh --no-merge 300       # fuzz only; leave the repository corpora as they are
#
# For each target: build it with clang (AddressSanitizer, build-fuzz/), fuzz a temporary copy of
# its corpus (the folder its ctest replay test reads, tests/*/fuzz_corpus*), then merge back into
# the repository corpus with libFuzzer's set-cover merge on edge coverage: only inputs that reach
# code the kept corpus does not are added, the fewest that do. New inputs are capped at the
# target's max_len (below), so a corpus stays small; the summary gives the files and bytes added,
# which are meant to be committed (their names are content hashes).
# Crashes, leaks, timeouts and out-of-memory inputs go to build-fuzz/crashes/TARGET-* (with the
# log) and make the script exit 1 after all targets ran, naming each failing target.
set -euo pipefail
cd "$(dirname "$0")/.."

merge=1
if [ "${1:-}" = "--no-merge" ]; then
  merge=0
  shift
fi
seconds="${1:-300}"
[ $# -gt 0 ] && shift
case "$seconds" in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [--no-merge] [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
jobs="${KILN_FUZZ_BUILD_JOBS:-2}"

# Largest input libFuzzer may generate, per target: room for the structure each format needs,
# and never a corpus file over 64 KB.
max_len_of() {
  case "$1" in
    fuzz_artifact_reader) echo 65536 ;;
    fuzz_gguf_reader | fuzz_gguf_import) echo 16384 ;;
    fuzz_chat_template | fuzz_tokenizer_json | fuzz_config_json) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

# Warnings are the g++ CI's job; clang-only ones must not stop a fuzzing run.
# The corpus of tests/DIR/fuzz_NAME.cpp, as its replay test reads it: DIR/fuzz_corpus/NAME when
# the folder holds one corpus per target, else DIR/fuzz_corpus_NAME, else DIR/fuzz_corpus.
corpus_of() {
  local source dir name
  source="$(ls tests/*/"$1".cpp | head -1)"
  dir="$(dirname "$source")"
  name="${1#fuzz_}"
  if [ -d "$dir/fuzz_corpus/$name" ]; then
    echo "$dir/fuzz_corpus/$name"
  elif [ -d "$dir/fuzz_corpus_$name" ]; then
    echo "$dir/fuzz_corpus_$name"
  elif [ -d "$dir/fuzz_corpus" ] && [ -z "$(find "$dir/fuzz_corpus" -mindepth 1 -type d -print -quit)" ]; then
    echo "$dir/fuzz_corpus"
  else
    echo "$dir/fuzz_corpus/$name"  # a new target starts an empty corpus of its own
  fi
}

CXX=clang++ CC=clang cmake -S . -B build-fuzz -G Ninja -DKILN_FUZZ=ON -DKILN_CUDA=OFF -DKILN_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
available=$(ninja -C build-fuzz -t targets all | grep -o '^fuzz_[a-z0-9_]*:' | tr -d ':' | grep -v replay | sort -u)
if [ $# -gt 0 ]; then
  targets="$*"
  for t in $targets; do
    grep -qx "$t" <<<"$available" || { echo "fuzz.sh: no fuzz target '$t' (have: $(echo $available))" >&2; exit 2; }
  done
else
  targets="$available"
fi
ninja -C build-fuzz -j"$jobs" $targets

mkdir -p build-fuzz/crashes
failed=()
summary=()
for target in $targets; do
  corpus="$(corpus_of "$target")"
  mkdir -p "$corpus"
  binary="$(pwd)/$(find build-fuzz -name "$target" -type f -perm -u+x | head -1)"
  max_len="$(max_len_of "$target")"
  work="$(mktemp -d)"
  cp -r "$corpus"/. "$work"/
  before=$(find "$corpus" -type f | wc -l)
  before_bytes=$(du -sb "$corpus" | cut -f1)
  artifacts="$(pwd)/build-fuzz/crashes/$target-"
  rm -f "$artifacts"* "build-fuzz/crashes/$target.log"  # what an earlier run left
  echo "== $target: ${seconds}s over $corpus ($before files, max_len $max_len)"
  status=ok
  # Crashes end the run early; the artifact prefix keeps the input that did it.
  if ! (cd "$work" && "$binary" -max_total_time="$seconds" -max_len="$max_len" -timeout=30 -rss_limit_mb=4096 \
          -print_final_stats=1 -artifact_prefix="$artifacts" . >"$work.log" 2>&1); then
    status=FAILED
    failed+=("$target: $(grep -m1 -o 'ERROR: .*\|==[0-9]*== ERROR: .*\|SUMMARY: .*' "$work.log" || echo 'see log')")
  fi
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added)' "$work.log" || true
  added=0
  added_bytes=0
  if [ "$merge" = 1 ]; then
    # Inputs of the run that reach code (edges; hit counts ignored) the kept corpus does not,
    # the fewest that cover it all (greedy set cover); crashing ones are skipped.
    "$binary" -set_cover_merge=1 -use_counters=0 -max_len="$max_len" -timeout=30 -rss_limit_mb=4096 \
      -artifact_prefix="$artifacts" "$corpus" "$work" >"$work.merge.log" 2>&1 || true
    added=$(($(find "$corpus" -type f | wc -l) - before))
    added_bytes=$(($(du -sb "$corpus" | cut -f1) - before_bytes))
  fi
  summary+=("$(printf '%-26s %-7s %4d corpus files, %4d added (%d bytes)' "$target" "$status" "$before" "$added" "$added_bytes")")
  [ "$status" = ok ] || cp "$work.log" "build-fuzz/crashes/$target.log"
  rm -rf "$work" "$work.log" "$work.merge.log"
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
[ "$merge" = 1 ] && echo "(new corpus files: git status tests/*/fuzz_corpus*)"
if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "== ${#failed[@]} target(s) failed; inputs and logs in build-fuzz/crashes/:"
  printf '  %s\n' "${failed[@]}"
  ls -1 build-fuzz/crashes/ | sed 's/^/  /'
  exit 1
fi
