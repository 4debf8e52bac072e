#!/usr/bin/env bash
# Runs the CUDA test suite on a GPU machine and prints a summary.
#   scripts/cuda_tests.sh [BIN_DIR]
# BIN_DIR holds cuda_tests and kiln built elsewhere (default: build the project here first).
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
if [ -z "$bin" ]; then
  cmake -S . -B build-cuda -G Ninja -DKILN_CUDA=ON >/dev/null && cmake --build build-cuda --target cuda_tests kiln || exit 1
  tests=build-cuda/tests/cuda/cuda_tests
  kiln=build-cuda/tools/kiln/kiln
else
  tests="$bin/cuda_tests"
  kiln="$bin/kiln"
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  # Binaries built on a newer distribution may need the libstdc++ carried beside them.
  "$tests" --gtest_list_tests >/dev/null 2>&1 || export LD_LIBRARY_PATH="$bin:$LD_LIBRARY_PATH"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$tests" --gtest_brief=1
status=$?
# End to end through the CLI: greedy ids on the GPU equal the CPU's.
prompt=$(python3 -c "import json;print(','.join(map(str,json.load(open('tests/fixtures/g31b/reference.json'))['prompt'])))")
gpu=$("$kiln" run tests/fixtures/g31b --device cuda --prompt-tokens "$prompt" --output-tokens --max-tokens 10 --temperature 0 --ignore-eos 2>/dev/null)
cpu=$("$kiln" run tests/fixtures/g31b --device cpu --prompt-tokens "$prompt" --output-tokens --max-tokens 10 --temperature 0 --ignore-eos 2>/dev/null)
echo "cli greedy cuda: $gpu"
echo "cli greedy cpu:  $cpu"
[ -n "$gpu" ] && [ "$gpu" = "$cpu" ] || status=1
echo "cuda_tests summary: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
