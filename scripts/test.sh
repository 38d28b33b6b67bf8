#!/usr/bin/env bash
# Runs leakguard's test suites and prints one summary line.
#
#   scripts/test.sh                 # gcc, clang, asan (ASan+UBSan), tsan, fuzz, then Meson
#   scripts/test.sh asan tsan       # any of: gcc clang asan tsan release fuzz meson
#
# Every suite runs even if an earlier one fails, so one run shows everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

suites=("$@")
[[ ${#suites[@]} -gt 0 ]] || suites=(gcc clang asan tsan fuzz meson)

# What the suites need on a fresh Debian 12 (only the missing ones are installed).
scripts/install-deps.sh g++ cmake ninja-build meson pkg-config python3 doctest-dev libabsl-dev libdw-dev \
  libgtest-dev libgmock-dev catch2 libbenchmark-dev clang-16 libclang-rt-16-dev zlib1g-dev libtcmalloc-minimal4 libjemalloc2 \
  libcrypt1

run_meson() {
  # --reconfigure picks up new source files (meson.build lists them at setup).
  if [[ -d build/meson/meson-private ]]; then
    meson setup --reconfigure build/meson
  else
    meson setup build/meson
  fi
  meson test -C build/meson --print-errorlogs
}

summary=()
status=0
passed=0
failed=0
for suite in "${suites[@]}"; do
  echo "=== leakguard: ${suite} ==="
  case "${suite}" in
    meson) cmd=(run_meson) ;;
    gcc | clang | asan | tsan | release | fuzz) cmd=(cmake --workflow --preset "${suite}") ;;
    *) echo "unknown suite '${suite}'" >&2; exit 2 ;;
  esac
  log=$(mktemp)
  if "${cmd[@]}" 2>&1 | tee "${log}"; then
    summary+=("${suite}: ok")
  else
    summary+=("${suite}: FAILED")
    status=1
  fi
  # Test counts from ctest ("N tests failed out of M") and meson ("Ok: N", "Fail: N").
  if out_of=$(grep -Eo '[0-9]+ tests failed out of [0-9]+' "${log}" | tail -n 1) && [[ -n ${out_of} ]]; then
    read -r f _ _ _ _ m <<<"${out_of}"
    passed=$((passed + m - f))
    failed=$((failed + f))
  fi
  ok=$(grep -Eo '^Ok: +[0-9]+' "${log}" | tail -n 1 | grep -Eo '[0-9]+' || true)
  bad=$(grep -Eo '^Fail: +[0-9]+' "${log}" | tail -n 1 | grep -Eo '[0-9]+' || true)
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${bad:-0}))
  rm -f "${log}"
done

verdict=PASS
[[ ${status} -eq 0 ]] || verdict=FAIL
line=""
for s in "${summary[@]}"; do line+="${line:+, }${s}"; done
echo "leakguard tests ${verdict}: ${line}"
echo "leakguard: ${passed} passed, ${failed} failed"
exit "${status}"
