#!/usr/bin/env bash
# Runs the CUDA test suite on a GPU machine and prints a summary.
#   scripts/cuda_tests.sh [BIN_DIR]
# BIN_DIR holds cuda_tests, cuda_kernel_tests, artifact_tests, constraint_corpus_tests and kiln
# built elsewhere (default: build them here first).
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
if [ -z "$bin" ]; then
  cmake -S . -B build-cuda -G Ninja -DKILN_CUDA=ON >/dev/null &&
    cmake --build build-cuda --target cuda_tests cuda_kernel_tests artifact_tests constraint_corpus_tests kiln || exit 1
  tests=build-cuda/tests/cuda/cuda_tests
  kernel_tests=build-cuda/tests/cuda/cuda_kernel_tests
  artifact_tests=build-cuda/tests/artifact/artifact_tests
  corpus_tests=build-cuda/tests/constraint/constraint_corpus_tests
  kiln=build-cuda/tools/kiln/kiln
else
  tests="$bin/cuda_tests"
  kernel_tests="$bin/cuda_kernel_tests"
  artifact_tests="$bin/artifact_tests"
  corpus_tests="$bin/constraint_corpus_tests"
  kiln="$bin/kiln"
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  # Binaries built on a newer distribution may need the libstdc++ carried beside them.
  "$tests" --gtest_list_tests >/dev/null 2>&1 || export LD_LIBRARY_PATH="$bin:$LD_LIBRARY_PATH"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# Parity with transformers, pipelined decode, mixed batches against solo CPU runs
# (CudaBatchTest: prefill chunks and decode tokens of several sequences in one step), and a whole
# model in every block format against its dequantized f32 twin (CudaQuantModelTest).
"$tests" --gtest_brief=1
status=$?
# Kernels against the reference kernels and the host sampler, block-format kernels against
# core/quant's scalar reference (QuantKernelTest); CUDA artifacts (AOT = JIT on the GPU).
if [ -x "$kernel_tests" ]; then "$kernel_tests" --gtest_brief=1 || status=1; fi
if [ -x "$artifact_tests" ]; then "$artifact_tests" --gtest_brief=1 --gtest_filter='CudaTargetTest.*' || status=1; fi
# Structured output on the GPU: the schema corpus with masks applied by the device sampler.
if [ -x "$corpus_tests" ]; then "$corpus_tests" --gtest_brief=1 --gtest_filter='*Cuda*' || status=1; fi
# End to end through the CLI: greedy ids on the GPU equal the CPU's.
prompt=$(python3 -c "import json;print(','.join(map(str,json.load(open('tests/fixtures/g31b/reference.json'))['prompt'])))")
errors="$(mktemp)"
greedy() { "$kiln" run "$@" --prompt-tokens "$prompt" --output-tokens --max-tokens 10 --temperature 0 --ignore-eos 2>>"$errors"; }
gpu=$(greedy tests/fixtures/g31b --device cuda)
cpu=$(greedy tests/fixtures/g31b --device cpu)
artifact="$(mktemp -d)/g31b-cuda.kiln"
"$kiln" compile tests/fixtures/g31b --target cuda -o "$artifact" >/dev/null 2>>"$errors"
aot=$(greedy "$artifact")
echo "cli greedy cuda: $gpu"
echo "cli greedy cpu:  $cpu"
echo "cli greedy cuda artifact: $aot"
if ! { [ -n "$gpu" ] && [ "$gpu" = "$cpu" ] && [ "$aot" = "$cpu" ]; }; then
  status=1
  echo "cli runs' messages:" && cat "$errors"
fi
echo "cuda_tests summary: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
