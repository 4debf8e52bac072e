#!/usr/bin/env bash
# The chat page at / in a real browser: Debian's Chromium, headless, driven by web_page_test.mjs
# through puppeteer-core, against two `kiln serve` on free ports (one of them with an API key).
# Exits 77 (ctest: skipped) when node, npm, curl or chromium is missing, or puppeteer-core cannot
# be installed (offline).
# Usage: web_page_test.sh KILN_BINARY CACHE_DIR
#   e.g. web_page_test.sh build/tools/kiln/kiln build/npm-puppeteer
set -uo pipefail
kiln="$1"
cache="$2"
here="$(cd "$(dirname "$0")" && pwd)"
package=puppeteer-core@24  # 24: the last major that runs on Debian's node 20
chromium="${CHROMIUM:-$(command -v chromium || true)}"
command -v node >/dev/null && command -v npm >/dev/null && command -v curl >/dev/null || { echo "SKIP: node, npm or curl not installed"; exit 77; }
[ -n "$chromium" ] && [ -x "$chromium" ] || { echo "SKIP: chromium not installed (scripts/install-deps.sh)"; exit 77; }
# The browser driver is installed into the build tree once (pinned major version).
mkdir -p "$cache" && cache="$(cd "$cache" && pwd)"
if [ ! -d "$cache/node_modules/${package%@*}" ]; then
  if ! (cd "$cache" && timeout 180 npm install --silent --no-audit --no-fund --fetch-retries=1 --fetch-timeout=30000 \
          --prefix "$cache" "$package" >/dev/null 2>&1); then
    echo "SKIP: npm install $package failed (offline?)"
    exit 77
  fi
fi
logs="$(mktemp -d)"
servers=()
trap 'for s in "${servers[@]}"; do kill $s 2>/dev/null; wait $s 2>/dev/null; done; rm -rf "$logs"' EXIT

# Starts `kiln serve` with the given extra flags; sets $url once /health answers 200.
start_server() {
  local log="$logs/server${#servers[@]}.log"
  "$kiln" serve --port 0 --ctx 1024 --parallel 4 "$@" 2>"$log" &
  local server=$!
  servers+=($server)
  url=""
  for _ in $(seq 1 300); do
    url="$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1)"
    if [ -n "$url" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health")" = 200 ]; then return 0; fi
    kill -0 $server 2>/dev/null || { cat "$log"; echo "kiln serve exited"; exit 1; }
    sleep 0.1
  done
  cat "$log"
  echo "kiln serve did not come up"
  exit 1
}

start_server
open_url="$url"
api_key="page-test-key"
start_server --api-key "$api_key"
keyed_url="$url"
cp "$here/web_page_test.mjs" "$cache/"
CHROMIUM="$chromium" node "$cache/web_page_test.mjs" "$open_url" "$keyed_url" "$api_key"
status=$?
for server in "${servers[@]}"; do
  kill -TERM $server
  wait $server || { cat "$logs"/*.log; echo "kiln serve exited with an error after SIGTERM"; exit 1; }
done
servers=()
exit $status
