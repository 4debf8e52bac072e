#!/bin/bash
# The GPU call for the MTP work: the transformers reference fixtures of the MTP tests
# (scripts/make_mtp_fixtures.py) and, with TRAIN=1, the bundled model's drafter trained on the GPU
# (docs/brown-model.md, "Its MTP drafter"; the shipped one was trained on a CPU). Run from the
# repository root with OUT set to a folder that receives fixtures.log and fixtures.tar
# (tests/fixtures/{g31b,e2b}/mtp and e2b/mtp_centroid: untar at the repository root), and with
# TRAIN=1 (the prepared corpus in .brown_data) train_mtp.log and mtp.tar
# (models/brown-gemma4/mtp). Folders come back as tar files because the device's result transfer
# keeps only two folder levels. KILN names a kiln binary (the trainer tokenizes with it and
# checks its target against it; default build/tools/kiln/kiln); other arguments go to the trainer.
set -o pipefail
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
PYTHONUNBUFFERED=1 python3 scripts/make_mtp_fixtures.py --fixtures tests/fixtures 2>&1 | tee "$OUT/fixtures.log"
fixtures=$?
tar cf "$OUT/fixtures.tar" $(ls -d tests/fixtures/g31b/mtp tests/fixtures/e2b/mtp tests/fixtures/e2b/mtp_centroid 2>/dev/null)
trained=0
if [ "${TRAIN:-0}" = 1 ]; then
  rm -rf /tmp/mtp_device && PYTHONUNBUFFERED=1 python3 scripts/brown_model/train_mtp.py --data .brown_data --target models/brown-gemma4 \
    --kiln "${KILN:-build/tools/kiln/kiln}" --out /tmp/mtp_device "$@" 2>&1 | tee "$OUT/train_mtp.log"
  trained=$?
  [ -d /tmp/mtp_device ] && tar cf "$OUT/mtp.tar" --transform 's|^tmp/mtp_device|models/brown-gemma4/mtp|' /tmp/mtp_device
fi
ls -la "$OUT"
exit $(( fixtures || trained ))
