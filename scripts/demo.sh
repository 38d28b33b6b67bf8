#!/usr/bin/env bash
# Builds the examples with the gcc preset and runs the quickstart and request_loop demos,
# then the doctest and GoogleTest integration examples.
# Installs missing Debian packages first when run as root (or with sudo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh g++ cmake ninja-build pkg-config libabsl-dev libdw-dev doctest-dev libgtest-dev

cmake --preset gcc
# Build only the examples (one target per examples/*.cpp), not the test suites.
shopt -s nullglob
targets=()
for src in examples/*.cpp; do
  targets+=("$(basename "${src}" .cpp)")
done
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "demo: no examples/*.cpp yet" >&2
  exit 1
fi
cmake --build --preset gcc --target "${targets[@]}"

# The quickstart leaks once on purpose; request_loop shows a per-request
# scope catching a rare leak in a long-running loop; http_server the server
# pattern with a grace period (one true leak, one growing global list).
status=0
for demo in quickstart request_loop session_cache thread_pool_server http_server; do
  echo "=== examples/${demo} ==="
  if ! "./build/gcc/examples/${demo}"; then
    echo "=== ${demo} failed ===" >&2
    status=1
  fi
done

# Test-framework integration: each suite has one deliberately leaky test, so
# the program exits non-zero by design. That failure is the expected result;
# anything else (a clean exit, a crash) fails the demo.
for demo in doctest_example gtest_example; do
  echo "=== examples/${demo} (one test leaks on purpose: expect 1 failed test) ==="
  set +e
  "./build/gcc/examples/${demo}"
  rc=$?
  set -e
  if [[ ${rc} -eq 1 ]]; then
    echo "=== ${demo}: the leaky test failed, as expected (exit 1) ==="
  else
    echo "=== ${demo} exited with ${rc}, expected 1 (the leaky test failing) ===" >&2
    status=1
  fi
done
exit "${status}"
