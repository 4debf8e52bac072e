#!/bin/bash
# The GPU call of the bundled model's MTP drafter (docs/brown-model.md, "Its MTP drafter") and of
# the transformers reference fixtures for the MTP tests (scripts/make_mtp_fixtures.py). Run from
# the repository root with the prepared corpus in .brown_data and OUT set to a folder that
# receives: train_mtp.log, mtp/ (the drafter: config.json, model.safetensors,
# training_report.json), fixtures.log and fixtures/{g31b,e2b}/mtp. KILN names a kiln binary (the
# trainer tokenizes with it and checks its target against it; default build/tools/kiln/kiln).
set -o pipefail
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
PYTHONUNBUFFERED=1 python3 scripts/make_mtp_fixtures.py --fixtures tests/fixtures 2>&1 | tee "$OUT/fixtures.log"
fixtures=$?
for target in g31b e2b; do
  mkdir -p "$OUT/fixtures/$target" && cp -r "tests/fixtures/$target/mtp" "$OUT/fixtures/$target/" 2>/dev/null
done
PYTHONUNBUFFERED=1 python3 scripts/brown_model/train_mtp.py --data .brown_data --target models/brown-gemma4 \
  --kiln "${KILN:-build/tools/kiln/kiln}" --out "$OUT/mtp" "$@" 2>&1 | tee "$OUT/train_mtp.log"
trained=$?
ls -la "$OUT" "$OUT/mtp"
exit $(( fixtures || trained ))
