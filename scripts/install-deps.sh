#!/usr/bin/env bash
# Installs the Debian packages kiln builds and tests with. Idempotent; needs root or sudo.
set -euo pipefail
packages=(
  cmake ninja-build ccache g++ clang
  nlohmann-json3-dev   # JSON: safetensors headers, config.json, index files
  libgtest-dev libgmock-dev
  libpcre2-dev         # regex pre-tokenizers (Unicode properties)
  python3-numpy        # reading .npy fixtures in helper scripts; llama.cpp's GGUF converter (oracle tests)
  python3-yaml         # llama.cpp's GGUF converter imports it (tests/oracle)
  libedit-dev          # line editing in `kiln chat` (BSD licence; optional: KILN_READLINE=OFF)
  libcpp-httplib-dev   # HTTP server for `kiln serve` (header-only httplib.h, MIT)
  chromium             # test-only: the chat page's browser test (tests/server/web_page_test.sh)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
