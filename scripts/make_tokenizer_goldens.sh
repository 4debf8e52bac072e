#!/usr/bin/env bash
# Regenerates the committed tokenizer goldens (tests/tokenizer/goldens/):
#   token ids from HF tokenizers (npm tokenizers@0.23.2) and chat template renderings from
#   Python Jinja2. The oracle is installed into a temporary directory, never into the repo.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ASSETS="${KILN_ASSET_DIR:-$HOME/.cache/kiln-assets}"
"$ROOT/scripts/fetch-tokenizer-assets.sh"
ORACLE="$(mktemp -d)"
trap 'rm -rf "$ORACLE"' EXIT
(cd "$ORACLE" && npm init -y >/dev/null && npm i --silent tokenizers@0.23.2 >/dev/null)
node "$ROOT/scripts/make_tokenizer_goldens.mjs" "$ORACLE" "$ASSETS" "$ROOT/tests/tokenizer/goldens"
python3 "$ROOT/scripts/make_tokenizer_goldens.py" "$ASSETS" "$ROOT/tests/tokenizer/goldens"
