#!/usr/bin/env bash
# Runs a client test script (openai_client_test.mjs, ollama_client_test.mjs) against `kiln serve`
# on a free port, with the npm package it imports. Exits 77 (ctest: skipped) when node or npm is
# missing or the package cannot be installed (offline).
# Usage: npm_client_test.sh KILN_BINARY CACHE_DIR PACKAGE@MAJOR SCRIPT.mjs URL_PATH
#   e.g. npm_client_test.sh build/tools/kiln/kiln build/npm-openai openai@4 openai_client_test.mjs /v1
#   (URL_PATH "/": the server root)
set -uo pipefail
kiln="$1"
cache="$2"
package="$3"
script="$4"
url_path="$5"
here="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null && command -v npm >/dev/null && command -v curl >/dev/null || { echo "SKIP: node, npm or curl not installed"; exit 77; }
# The client is a test oracle, installed into the build tree once (pinned major version).
if [ ! -d "$cache/node_modules/${package%@*}" ]; then
  mkdir -p "$cache"
  if ! (cd "$cache" && timeout 180 npm install --silent --no-audit --no-fund --fetch-retries=1 --fetch-timeout=30000 \
          --prefix "$cache" "$package" >/dev/null 2>&1); then
    echo "SKIP: npm install $package failed (offline?)"
    exit 77
  fi
fi
log="$(mktemp)"
"$kiln" serve --port 0 --ctx 1024 --parallel 4 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
url=""
for _ in $(seq 1 300); do
  url="$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1)"
  if [ -n "$url" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health")" = 200 ]; then break; fi
  kill -0 $server 2>/dev/null || { cat "$log"; echo "kiln serve exited"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$log"; echo "kiln serve did not come up"; exit 1; }
cp "$here/$script" "$cache/"
node "$cache/$script" "$url${url_path%/}"
status=$?
kill -TERM $server
wait $server
server_status=$?
trap 'rm -f "$log"' EXIT
[ $server_status -eq 0 ] || { cat "$log"; echo "kiln serve exited with $server_status after SIGTERM"; exit 1; }
exit $status
