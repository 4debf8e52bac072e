#!/bin/bash
# The one GPU call of the recipe (scripts/brown_model/README in docs/brown-model.md).
# Run from the repository root with the prepared corpus in .brown_data and OUT set to a folder
# that receives the results: train.log and result.tar.part-* (a tar of models/brown-gemma4 and
# tests/brown_model, split into 15 MB parts). Unpack with: cat result.tar.part-* | tar -x -C .
set -o pipefail
W=/tmp/brown_result
rm -rf "$W"; mkdir -p "$W/models/brown-gemma4" "$W/tests/brown_model"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
PYTHONUNBUFFERED=1 python3 scripts/brown_model/train.py --data .brown_data \
  --model-out "$W/models/brown-gemma4" --goldens-out "$W/tests/brown_model" "$@" 2>&1 | tee "$OUT/train.log"
rc=$?
tar -C "$W" -cf - . | split -b 15M - "$OUT/result.tar.part-"
ls -la "$OUT"
exit $rc
