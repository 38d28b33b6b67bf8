#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are not installed yet
# (as root, or through sudo). Shared by demo.sh, test.sh and .ci/run.
set -euo pipefail

missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "leakguard: missing packages: ${missing[*]} (run as root or install them)" >&2
  exit 1
fi
echo "leakguard: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
